;;; stagerunner-test-helpers.el --- What the StageRunner tests share -*- lexical-binding: t; -*-

;;; Commentary:

;; The server binary, temporary copies of the examples, waiting on the
;; event loop, captured messages, and a clean slate between tests.

;;; Code:

(require 'ert)
(require 'cl-lib)
(require 'subr-x)
(require 'jsonrpc)
(require 'stagerunner)

(defconst srt-here
  (file-name-directory (or load-file-name buffer-file-name))
  "The tests directory.")

(defconst srt-repo (expand-file-name "../../../" srt-here)
  "The repository root, with a trailing slash.")

(defun srt-bin ()
  "The server binary: $STAGERUNNER_BIN, else .build/debug/stagerunner."
  (let ((bin (getenv "STAGERUNNER_BIN")))
    (expand-file-name (if (and bin (not (string-empty-p bin)))
                          bin
                        (expand-file-name ".build/debug/stagerunner" srt-repo)))))

(defun srt-workspace (&optional example)
  "A fresh copy of examples/EXAMPLE (default daydream); its absolute path."
  (let* ((name (or example "daydream"))
         (dir (make-temp-file "srt-" t))
         (target (expand-file-name name dir)))
    (copy-directory (expand-file-name (concat "examples/" name) srt-repo) target)
    ;; Temporary directories may sit behind a symbolic link (/tmp on
    ;; some systems); the server answers with the real path.
    (directory-file-name (file-truename target))))

(defun srt-write (file &rest lines)
  "Write LINES to FILE, creating its directory."
  (make-directory (file-name-directory file) t)
  (with-temp-file file
    (dolist (line lines) (insert line "\n"))))

(defun srt-append (file line)
  "Append LINE to FILE."
  (write-region (concat line "\n") nil file t 'silent))

(defun srt-read (file)
  "The contents of FILE."
  (with-temp-buffer
    (insert-file-contents file)
    (buffer-string)))

(defun srt-wait (predicate what &optional seconds)
  "Run the event loop until PREDICATE is true; fail after SECONDS naming WHAT."
  (let ((deadline (+ (float-time) (or seconds 30))))
    (while (not (funcall predicate))
      (when (> (float-time) deadline)
        (ert-fail (format "timed out waiting for %s" what)))
      (accept-process-output nil 0.02))))

(defun srt-await (function &rest args)
  "Call FUNCTION with ARGS and an on-done callback; wait; return (RESULT ERR)."
  (let ((outcome nil))
    (apply function (append args (list (lambda (result err)
                                         (setq outcome (list result err))))))
    (srt-wait (lambda () outcome) (format "%s to call back" function) 60)
    outcome))

(defun srt-lines (buffer-or-name)
  "The lines of BUFFER-OR-NAME, without the empty one after the last newline."
  (let ((buffer (or (get-buffer buffer-or-name)
                    (ert-fail (format "no buffer %s" buffer-or-name)))))
    (with-current-buffer buffer
      (let ((lines (split-string (buffer-string) "\n")))
        (if (equal (car (last lines)) "") (butlast lines) lines)))))

(defun srt-index (lines line)
  "The position of LINE in LINES, or nil."
  (cl-position line lines :test #'equal))

;;;; Messages

(defvar srt-messages nil
  "Messages shown since the test began, newest first.")

(defun srt--record-message (format-string &rest args)
  "Record the message FORMAT-STRING with ARGS."
  (when format-string
    (push (apply #'format-message format-string args) srt-messages)))

(advice-add 'message :before #'srt--record-message)

(defun srt-messages-matching (regexp)
  "The messages that match REGEXP, oldest first."
  (reverse (cl-remove-if-not (lambda (m) (string-match-p regexp m)) srt-messages)))

;;;; A clean slate

(defun srt-cleanup ()
  "Stop every server, kill the buffers the tests made, forget the jobs."
  (ignore-errors (stagerunner-stop))
  (dolist (buffer (buffer-list))
    (let ((name (buffer-name buffer)))
      (when (or (string-prefix-p "*stagerunner" name)
                (string-prefix-p " *stagerunner" name)
                (let ((file (buffer-file-name buffer)))
                  (and file (string-match-p "/srt-" file))))
        (with-current-buffer buffer (set-buffer-modified-p nil))
        (kill-buffer buffer))))
  (clrhash stagerunner--job-views)
  (clrhash stagerunner--subscriptions)
  (clrhash stagerunner--connections)
  (setq stagerunner--early-notifications nil
        stagerunner--pending-subscriptions 0))

(defmacro srt-with-package (&rest body)
  "Run BODY with the package's options at their test values, then clean up."
  (declare (indent 0) (debug t))
  `(let ((stagerunner-program (srt-bin))
         (stagerunner-program-args nil)
         (stagerunner-environment nil)
         (stagerunner-stage-handlers nil)
         (stagerunner-model nil)
         (stagerunner-workspace nil)
         (stagerunner-save-before-request t)
         (srt-messages nil))
     (unwind-protect
         (progn ,@body)
       (srt-cleanup))))

(provide 'stagerunner-test-helpers)
;;; stagerunner-test-helpers.el ends here
