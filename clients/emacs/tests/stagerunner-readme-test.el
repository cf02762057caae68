;;; stagerunner-readme-test.el --- The README's examples, run as written -*- lexical-binding: t; -*-

;;; Commentary:

;; The quick start and the plain jsonrpc.el example of README.md, each in
;; a fresh Emacs, from a directory laid out like the repository root.

;;; Code:

(require 'stagerunner-test-helpers)

(defun srt-readme-block (heading)
  "The first elisp block after the line HEADING of the README."
  (let ((text (srt-read (expand-file-name "../README.md" srt-here))))
    (unless (string-match (concat "^" (regexp-quote heading) "\n\\(?:.*\n\\)*?```elisp\n\\(\\(?:.*\n\\)*?\\)```")
                          text)
      (ert-fail (format "no elisp block under %s" heading)))
    (match-string 1 text)))

(defun srt-code-lines (block)
  "The lines of BLOCK that are neither blank nor only a comment."
  (cl-remove-if (lambda (line) (string-match-p "\\`[ \t]*\\(;.*\\)?\\'" line))
                (split-string block "\n")))

(defun srt-fake-root ()
  "A directory laid out like the repository root: examples/daydream, a bin/."
  (let ((root (make-temp-file "srt-root-" t)))
    (make-directory (expand-file-name "examples" root))
    (copy-directory (expand-file-name "examples/daydream" srt-repo)
                    (expand-file-name "examples/daydream" root))
    (make-directory (expand-file-name "bin" root))
    (make-symbolic-link (srt-bin) (expand-file-name "bin/stagerunner" root))
    (file-name-as-directory (file-truename root))))

(defun srt-run-emacs (directory &rest args)
  "Run a fresh batch Emacs in DIRECTORY with ARGS; return (STATUS OUTPUT)."
  (with-temp-buffer
    (let* ((default-directory directory)
           (status (apply #'call-process
                          (expand-file-name invocation-name invocation-directory)
                          nil t nil "--batch" "-Q" args)))
      (list status (buffer-string)))))

(ert-deftest stagerunner-readme/plain-jsonrpc-example ()
  "The plain jsonrpc.el example is five lines, and generates d-creative."
  (let* ((block (srt-readme-block "## Plain jsonrpc.el"))
         (root (srt-fake-root))
         (script (expand-file-name "plain.el" root)))
    (should (equal (length (srt-code-lines block)) 5))
    (srt-write script block)
    (let ((process-environment
           (cons (format "PATH=%s:%s" (expand-file-name "bin" root) (getenv "PATH"))
                 process-environment)))
      (pcase-let ((`(,status ,output) (srt-run-emacs root "-l" script)))
        (should (equal (list status output) (list 0 output)))
        (should (string-search (concat "A background \"daydreaming loop\": a generator samples"
                                       " pairs of concepts from memory and proposes\n")
                               output))))
    (should (file-exists-p (expand-file-name
                            "examples/daydream/data/gens/draft/d-creative/metadata.json"
                            root)))))

(ert-deftest stagerunner-readme/quick-start ()
  "The quick start renders, runs and checks with Flymake."
  (let* ((block (srt-readme-block "## Quick start"))
         (root (srt-fake-root))
         (script (expand-file-name "quickstart.el" root))
         (check (expand-file-name "check.el" root))
         (out (expand-file-name "quickstart.out" root)))
    (should (<= (length (srt-code-lines block)) 10))
    (srt-write script block)
    (srt-write check
               "(defun has (name) (get-buffer name))"
               "(set-buffer (get-file-buffer \"examples/daydream/data/1_raw/templates/draft/creative-synthesis.txt\"))"
               "(with-timeout (30 (kill-emacs 3))"
               "  (while (not (and (has \"*stagerunner render: draft/d-creative*\")"
               "                   (has \"*stagerunner run: draft/d-creative*\")"
               "                   (memq 'stagerunner-flymake (flymake-reporting-backends))))"
               "    (accept-process-output nil 0.05)))"
               "(let ((here (format \"%s %d\\n\" (buffer-name) (length (flymake-diagnostics)))))"
               (format "  (with-temp-file %S" out)
               "    (dolist (name '(\"*stagerunner render: draft/d-creative*\" \"*stagerunner run: draft/d-creative*\"))"
               "      (insert (with-current-buffer name (goto-char (point-min)) (buffer-substring (point) (line-end-position))) \"\\n\"))"
               "    (insert here)))"
               "(kill-emacs 0)")
    (let ((process-environment (cons (concat "STAGERUNNER_BIN=" (srt-bin))
                                     process-environment)))
      (pcase-let ((`(,status ,output)
                   (srt-run-emacs root "-L" (file-name-directory (locate-library "stagerunner"))
                                  "-l" script "-l" check)))
        (should (equal (list status output) (list 0 output)))))
    (should (equal (srt-read out)
                   (concat "# draft/d-creative · template creative-synthesis\n"
                           "# runStage draft/d-creative: success\n"
                           "creative-synthesis.txt 0\n")))
    (should (file-exists-p (expand-file-name
                            "examples/daydream/data/gens/draft/d-creative/metadata.json"
                            root)))))

(provide 'stagerunner-readme-test)
;;; stagerunner-readme-test.el ends here
