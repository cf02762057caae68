;;; lint.el --- Byte-compile and checkdoc stagerunner.el -*- lexical-binding: t; -*-

;;; Commentary:

;; emacs --batch -Q -l tests/lint.el DIR
;;
;; Byte-compiles DIR/stagerunner.el with every warning an error, then
;; runs checkdoc on it; exits 1 if either complains.  DIR is a scratch
;; copy, so that no .elc is left in the source tree.

;;; Code:

(require 'checkdoc)

(defvar lint--problems 0
  "How many problems were found.")

(let* ((dir (car command-line-args-left))
       (file (expand-file-name "stagerunner.el" dir)))
  (setq command-line-args-left nil)
  (let ((byte-compile-error-on-warn t))
    (unless (byte-compile-file file)
      (message "lint: byte-compiling %s failed" file)
      (cl-incf lint--problems)))
  (advice-add 'checkdoc-error :before
              (lambda (&rest _) (cl-incf lint--problems)))
  (let ((sentence-end-double-space t))
    (checkdoc-file file))
  (if (> lint--problems 0)
      (progn (message "lint: %d problem(s)" lint--problems)
             (kill-emacs 1))
    (message "lint: stagerunner.el byte-compiles without warnings and passes checkdoc")
    (kill-emacs 0)))

;;; lint.el ends here
