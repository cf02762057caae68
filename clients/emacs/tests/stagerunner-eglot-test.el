;;; stagerunner-eglot-test.el --- The server's LSP features through Eglot -*- lexical-binding: t; -*-

;;; Commentary:

;; `stagerunner serve' as a language server for prompt templates, driven
;; by Eglot, Emacs's generic LSP client, configured the way Eglot users
;; configure it: a major mode for the template files, an entry in
;; `eglot-server-programs', `eglot-ensure' from the mode's hook, and a
;; `project-find-functions' entry that makes the directory holding
;; stagerunner.yaml the project (so that Eglot's rootUri is the
;; workspace).  Nothing of stagerunner.el is loaded.
;;
;; Eglot is built in from Emacs 29.  On Emacs 28 (Debian 12's emacs-nox)
;; this file activates Debian's elpa-eglot package, which run.sh installs
;; with apt when it is missing.
;;
;; Batch Emacs runs no command loop and is never idle, so two things a
;; person's Emacs does by itself are done here by hand: `srt-eglot-command'
;; runs `post-command-hook' (where `eglot-ensure' connects) as the end of
;; a command does, and `srt-eglot-idle' runs the idle timers that are due
;; (where Eglot sends didChange and Flymake starts a check) as a pause in
;; typing does.
;;
;; From the repository root, alone:
;;   STAGERUNNER_BIN=.build/debug/stagerunner emacs --batch -Q \
;;     -L clients/emacs/tests -l stagerunner-eglot-test -f ert-run-tests-batch-and-exit

;;; Code:

(require 'ert)
(require 'cl-lib)
(require 'subr-x)
(require 'package)

(eval-and-compile
  (unless (require 'eglot nil t)
    ;; `emacs -Q' activates no package: activate Debian's, as its
    ;; site-start file would (elpa-eglot 1.9 with the project, xref and
    ;; seq it depends on).
    (when (file-directory-p "/usr/share/emacs/site-lisp/elpa")
      (add-to-list 'package-directory-list "/usr/share/emacs/site-lisp/elpa")
      (package-initialize))
    (unless (require 'eglot nil t)
      (error "No Eglot: Emacs 29 or later has it; on Debian, apt-get install elpa-eglot"))))

(require 'jsonrpc)
(require 'flymake)
(require 'eldoc)
(require 'xref)
(require 'project)

(message "Eglot from %s" (locate-library "eglot"))

(defconst srt-eglot-here
  (file-name-directory (or load-file-name buffer-file-name))
  "The tests directory.")

(defconst srt-eglot-repo (expand-file-name "../../../" srt-eglot-here)
  "The repository root, with a trailing slash.")

(defun srt-eglot-bin ()
  "The server binary: $STAGERUNNER_BIN, else .build/debug/stagerunner."
  (let ((bin (getenv "STAGERUNNER_BIN")))
    (expand-file-name (if (and bin (not (string-empty-p bin)))
                          bin
                        (expand-file-name ".build/debug/stagerunner" srt-eglot-repo)))))

;;;; The user's configuration, as it would stand in an init file

(define-derived-mode srt-eglot-template-mode text-mode "SR-Template"
  "A major mode for StageRunner's prompt templates, for this test.")

(add-to-list 'auto-mode-alist '("/templates/.*\\.txt\\'" . srt-eglot-template-mode))
(add-hook 'srt-eglot-template-mode-hook #'eglot-ensure)

;; `stagerunner' on the path, as a user has it: the directory of the
;; binary under test goes first on `exec-path'.
(let ((bin (srt-eglot-bin)))
  (if (equal (file-name-nondirectory bin) "stagerunner")
      (progn
        (push (directory-file-name (file-name-directory bin)) exec-path)
        (add-to-list 'eglot-server-programs
                     '(srt-eglot-template-mode . ("stagerunner" "serve"))))
    (add-to-list 'eglot-server-programs
                 `(srt-eglot-template-mode . (,bin "serve")))))

(defun srt-eglot-find-workspace (directory)
  "The StageRunner workspace holding DIRECTORY, as a project, or nil."
  (let ((root (locate-dominating-file directory "stagerunner.yaml")))
    (and root (cons 'transient (expand-file-name root)))))

(add-hook 'project-find-functions #'srt-eglot-find-workspace)

;;;; What the tests share

(defconst srt-eglot-template "data/1_raw/templates/draft/creative-synthesis.txt"
  "The template the tests edit, relative to the workspace.")

(defun srt-eglot-workspace ()
  "A fresh copy of examples/daydream; its absolute path."
  (let* ((dir (make-temp-file "srt-eglot-" t))
         (target (expand-file-name "daydream" dir)))
    (copy-directory (expand-file-name "examples/daydream" srt-eglot-repo) target)
    (directory-file-name (file-truename target))))

(defun srt-eglot-command ()
  "End a command as the command loop does: `post-command-hook', `this-command'."
  (run-hooks 'post-command-hook)
  (setq last-command this-command
        this-command nil))

(defun srt-eglot-run-command (command)
  "Run COMMAND as the command loop would for a key, and return its value."
  (setq this-command command)
  (run-hooks 'pre-command-hook)
  (prog1 (call-interactively command)
    (srt-eglot-command)))

(defun srt-eglot-idle ()
  "Run the idle timers that are due, as Emacs does when typing pauses."
  (dolist (timer (copy-sequence timer-idle-list))
    (when (memq timer timer-idle-list)
      (timer-event-handler timer))))

(defmacro srt-eglot-wait (form what &optional seconds)
  "Poll the event loop until FORM is non-nil, and return it.
Fail naming WHAT after SECONDS (default 30)."
  (declare (indent 1) (debug t))
  (let ((value (make-symbol "value")))
    `(let ((,value nil))
       (with-timeout (,(or seconds 30)
                      (ert-fail (format "timed out after %ss waiting for %s"
                                        ,(or seconds 30) ,what)))
         (while (not (setq ,value ,form))
           (accept-process-output nil 0.05)))
       ,value)))

(defun srt-eglot-diagnostics ()
  "Flymake's diagnostics in the buffer: (TEXT TYPE REGION-TEXT LINE), by line."
  (sort (mapcar (lambda (d)
                  (list (flymake-diagnostic-text d)
                        (flymake-diagnostic-type d)
                        (buffer-substring-no-properties (flymake-diagnostic-beg d)
                                                        (flymake-diagnostic-end d))
                        (line-number-at-pos (flymake-diagnostic-beg d))))
                (flymake-diagnostics))
        (lambda (a b) (< (nth 3 a) (nth 3 b)))))

(defmacro srt-eglot-with-template (lines &rest body)
  "Visit the template in a fresh workspace, with LINES appended, under Eglot.
Run BODY in its buffer once Eglot manages it, then shut the server
down, kill the buffer and delete the workspace."
  (declare (indent 1) (debug (form body)))
  `(let* ((workspace (srt-eglot-workspace))
          (file (expand-file-name srt-eglot-template workspace))
          (buffer nil))
     (unwind-protect
         (progn
           (dolist (line ,lines)
             (write-region (concat line "\n") nil file t 'silent))
           ;; `find-file', as a person opens it: the buffer is shown in
           ;; the selected window, where Flymake checks it.
           (setq buffer (find-file file))
           (should (eq major-mode 'srt-eglot-template-mode))
           (srt-eglot-command)
           (srt-eglot-wait (and (bound-and-true-p eglot--managed-mode)
                                (eglot-current-server))
             "Eglot to manage the template")
           (should (equal (file-name-as-directory
                           (file-truename (project-root (eglot--project (eglot-current-server)))))
                          (file-name-as-directory workspace)))
           ,@body)
       (when (buffer-live-p buffer)
         (with-current-buffer buffer
           (let ((server (eglot-current-server)))
             (when server (ignore-errors (eglot-shutdown server nil 10))))
           (set-buffer-modified-p nil))
         (kill-buffer buffer))
       (delete-directory (file-name-directory workspace) t))))

(defun srt-eglot-goto-concepts ()
  "Put point on `concepts' in `{% for concept in concepts -%}' (line 4)."
  (goto-char (point-min))
  (forward-line 3)
  (should (looking-at-p (regexp-quote "{% for concept in concepts -%}")))
  (re-search-forward "in \\(concepts\\)")
  (goto-char (1+ (match-beginning 1))))

;;;; The tests

(ert-deftest stagerunner-eglot/diagnostics-through-flymake ()
  "An unknown filter is an error in Flymake, on open and as the text changes."
  (srt-eglot-with-template '("{{ concepts | nosuchfilter }}")
    (should flymake-mode)
    (should (memq 'eglot-flymake-backend flymake-diagnostic-functions))
    ;; didOpen: the line appended before the file was opened (line 10).
    (srt-eglot-wait (flymake-diagnostics) "the diagnostic of didOpen")
    (let ((diagnostics (srt-eglot-diagnostics)))
      (should (= (length diagnostics) 1))
      (pcase-let ((`(,text ,type ,region ,line) (car diagnostics)))
        (should (string-match-p "no filter named 'nosuchfilter'" text))
        (should (string-match-p "template\\.unknown-filter" text))
        (should (string-prefix-p "stagerunner" text))
        (should (eq type 'eglot-error))
        (should (equal region "nosuchfilter"))
        (should (= line 10))))
    ;; didChange (full sync): the filter fixed, the error goes.
    (goto-char (point-min))
    (search-forward "nosuchfilter")
    (replace-match "upper" t t)
    (srt-eglot-idle)
    (srt-eglot-wait (null (flymake-diagnostics)) "the diagnostic to go")
    ;; And a new one, on the line typed after it.
    (goto-char (point-max))
    (insert "{{ concepts | alsonotafilter }}\n")
    (srt-eglot-idle)
    (srt-eglot-wait (flymake-diagnostics) "the diagnostic of didChange")
    (let ((diagnostics (srt-eglot-diagnostics)))
      (should (= (length diagnostics) 1))
      (should (string-match-p "no filter named 'alsonotafilter'" (nth 0 (car diagnostics))))
      (should (equal (nth 2 (car diagnostics)) "alsonotafilter"))
      (should (= (nth 3 (car diagnostics)) 11)))))

(ert-deftest stagerunner-eglot/hover ()
  "Hover on a template variable tells where its value comes from."
  (srt-eglot-with-template nil
    (srt-eglot-goto-concepts)
    ;; The request, as `jsonrpc-request' on Eglot's connection.
    (let* ((hover (jsonrpc-request (eglot-current-server) :textDocument/hover
                                   (eglot--TextDocumentPositionParams)))
           (contents (plist-get hover :contents)))
      (should contents)
      ;; Without markdown-mode Eglot asks for plain text, and gets it.
      (should (string-prefix-p (if (fboundp 'gfm-view-mode) "**concepts** — from combo"
                                 "concepts — from combo")
                               (plist-get contents :value)))
      (should (string-match-p "from combo 'combo-loop' in stagerunner\\.yaml"
                              (plist-get contents :value))))
    ;; What ElDoc shows: Eglot's hover member of the buffer's
    ;; `eldoc-documentation-functions', called as ElDoc calls it.
    (should (memq #'eglot-hover-eldoc-function eldoc-documentation-functions))
    (let ((info nil))
      (should (eglot-hover-eldoc-function
               (lambda (string &rest _) (setq info (or string 'nothing)))))
      (srt-eglot-wait info "ElDoc's hover text")
      (should (stringp info))
      (should (string-match-p "concepts" info))
      (should (string-match-p "from combo 'combo-loop' in stagerunner\\.yaml" info)))))

(ert-deftest stagerunner-eglot/hover-honours-plaintext ()
  "Hover contents are plain text to a client that only takes plain text.
Eglot without markdown-mode announces hover contentFormat
\[\"plaintext\"]: ElDoc must not show Markdown's asterisks."
  (skip-unless (not (fboundp 'gfm-view-mode)))
  (srt-eglot-with-template nil
    (srt-eglot-goto-concepts)
    (let* ((hover (jsonrpc-request (eglot-current-server) :textDocument/hover
                                   (eglot--TextDocumentPositionParams)))
           (contents (plist-get hover :contents))
           (value (if (stringp contents) contents (plist-get contents :value))))
      (should (string-match-p "from combo 'combo-loop'" value))
      (unless (stringp contents)
        (should (equal (plist-get contents :kind) "plaintext")))
      (should-not (string-match-p "\\*\\*" value)))))

(ert-deftest stagerunner-eglot/completion ()
  "After `{{ concepts | ', completion at point offers the filters."
  (srt-eglot-with-template nil
    (should (memq #'eglot-completion-at-point completion-at-point-functions))
    (goto-char (point-max))
    (insert "{{ concepts | ")
    (pcase-let ((`(,beg ,end ,table . ,_) (eglot-completion-at-point)))
      (should (= beg end (point)))
      (let ((candidates (all-completions "" table)))
        (should (member "upper" candidates))
        (should (member "wordwrap" candidates))
        (should (member "default" candidates))))
    ;; And as a person completes: type part of a name, complete it.
    (insert "uppe")
    (srt-eglot-idle)
    (should (srt-eglot-run-command #'completion-at-point))
    (should (equal (buffer-substring-no-properties (line-beginning-position) (point))
                   "{{ concepts | upper"))))

(ert-deftest stagerunner-eglot/references ()
  "The references of a template, through xref, are the rows that name it."
  (srt-eglot-with-template nil
    (srt-eglot-goto-concepts)
    (let* ((backend (xref-find-backend))
           (references (xref-backend-references
                        backend (xref-backend-identifier-at-point backend))))
      (should (eq backend 'eglot))
      (should (equal (sort (mapcar (lambda (xref)
                                     (file-relative-name
                                      (xref-location-group (xref-item-location xref))
                                      (file-name-directory workspace)))
                                   references)
                           #'string<)
                     '("daydream/data/1_raw/draft_templates.csv"
                       "daydream/data/cohorts/demo/membership.csv"))))))

(provide 'stagerunner-eglot-test)
;;; stagerunner-eglot-test.el ends here
