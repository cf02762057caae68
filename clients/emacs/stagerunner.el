;;; stagerunner.el --- Client for the StageRunner JSON-RPC server -*- lexical-binding: t; -*-

;; Copyright (C) 2026 The StageRunner authors

;; Author: The StageRunner authors
;; Version: 0.1.0
;; Package-Requires: ((emacs "28.1") (jsonrpc "1.0.14"))
;; Keywords: tools, processes

;; This file is not part of GNU Emacs.

;;; Commentary:

;; StageRunner runs LLM generation pipelines and serves them as a
;; JSON-RPC 2.0 service on stdio (`stagerunner serve').  This package
;; talks to that server through Emacs's own `jsonrpc' library, one
;; server per workspace, and offers:
;;
;;   `stagerunner-render-prompt'  the prompt of the template being edited
;;   `stagerunner-run-stage'      run its stage; status, parsed and raw
;;                                text, metadata in a buffer
;;   `stagerunner-validate'       the workspace's problems (Flymake backend
;;                                `stagerunner-flymake', `stagerunner-mode')
;;   `stagerunner-run-pipeline'   start a job and follow it live
;;   `stagerunner-job-status'     follow an existing job
;;   `stagerunner-list-jobs'      the jobs of the workspace
;;   `stagerunner-cancel-job'     cancel a running or pending job
;;   `stagerunner-check'          is everything in place?
;;   `stagerunner-stop'           shutdown and exit every server
;;   `stagerunner-log'            the server's stderr
;;
;; A workspace is the nearest directory above the buffer's file that
;; holds one of `stagerunner-workspace-markers'.  The wire protocol is
;; described in protocol/README.md of the StageRunner repository.

;;; Code:

(require 'cl-lib)
(require 'eieio)
(require 'jsonrpc)
(require 'flymake)
(require 'compile)
(require 'tabulated-list)
(require 'subr-x)

(defconst stagerunner-version "0.1.0"
  "Version of this package, sent to the server as `clientInfo.version'.")

(defconst stagerunner-protocol-version "1.0"
  "The StageRunner protocol version this package speaks.")


;;;; Options

(defgroup stagerunner nil
  "Run StageRunner generation pipelines through `stagerunner serve'."
  :group 'tools
  :prefix "stagerunner-")

(defcustom stagerunner-program "stagerunner"
  "The StageRunner executable: a name looked up in variable `exec-path', or a path.
A relative path is relative to the `default-directory' of the buffer
where a server is started."
  :type 'string)

(defcustom stagerunner-program-args nil
  "Arguments added after `serve --workspace ROOT', such as \"--log-level\"."
  :type '(repeat string))

(defcustom stagerunner-environment nil
  "Entries \"NAME=VALUE\" added to the server's environment."
  :type '(repeat string))

(defcustom stagerunner-workspace nil
  "A fixed workspace root, or nil to find it from the buffer's file."
  :type '(choice (const :tag "Found from the buffer" nil) directory))

(defcustom stagerunner-workspace-markers '("stagerunner.yaml" "data/1_raw")
  "Files or directories whose presence makes a directory a workspace root.
The nearest directory above the buffer's file that holds one of them
is the workspace."
  :type '(repeat string))

(defcustom stagerunner-model nil
  "Model for templates that no membership row uses, or nil for none."
  :type '(choice (const :tag "None" nil) string))

(defcustom stagerunner-save-before-request t
  "Whether to save a modified template buffer before rendering or running it.
The server reads the template from disk, not from the buffer."
  :type 'boolean)

(defcustom stagerunner-connect-timeout 15
  "Seconds to wait for the server to answer `initialize' or `shutdown'."
  :type 'number)

(defcustom stagerunner-stage-handlers nil
  "Client-side stage handlers, an alist of (NAME . FUNCTION).
A task stage written `{client: NAME}' is run by FUNCTION, called with
the stage name and the task context (a plist) when the server sends
`executeStage'.  FUNCTION returns a plist (:output OUTPUT :flags FLAGS),
or any other value, which is taken as OUTPUT with no flags.  An error
it signals fails the stage.  The names are declared to the server when
it starts, so restart it (\\[stagerunner-stop]) after changing them."
  :type '(alist :key-type string :value-type function))

(defcustom stagerunner-events-buffer-size 200000
  "Size in characters of each server's JSON-RPC events buffer; 0 disables it."
  :type 'integer)

(defcustom stagerunner-notification-functions nil
  "Functions called with (CONNECTION METHOD PARAMS) for other notifications.
METHOD is a symbol such as `$/progress'; `statusChanged' is handled
by the job buffers."
  :type 'hook)


;;;; JSON values

(defun stagerunner--get (object &rest keys)
  "Follow KEYS (keywords) down the nested plists from OBJECT."
  (while (and keys (listp object))
    (setq object (plist-get object (pop keys))))
  (if keys nil object))

(defun stagerunner--key (name)
  "The plist key of the JSON member NAME."
  (intern (concat ":" name)))

(defun stagerunner--keys (plist)
  "The member names of the JSON object PLIST, in its order."
  (cl-loop for (key _value) on plist by #'cddr
           collect (substring (symbol-name key) 1)))

(defun stagerunner--number (value)
  "VALUE if it is a number, else 0."
  (if (numberp value) value 0))

(defun stagerunner--object-p (value)
  "Whether VALUE is a non-empty JSON object read as a plist."
  (and (consp value) (keywordp (car value))))

(defun stagerunner--scalar (value)
  "VALUE, a JSON scalar, as text."
  (cond ((null value) "null")
        ((eq value t) "true")
        ((eq value :json-false) "false")
        ((stringp value) value)
        (t (format "%s" value))))

(defun stagerunner--value-lines (value &optional indent)
  "VALUE, a JSON value, as \"key: value\" lines with keys sorted.
Nested objects and arrays are indented by two more spaces than INDENT."
  (setq indent (or indent ""))
  (cond
   ((stagerunner--object-p value)
    (cl-loop
     for name in (sort (stagerunner--keys value) #'string<)
     for item = (plist-get value (stagerunner--key name))
     append (stagerunner--member-lines (concat indent name ":") item indent)))
   ((vectorp value)
    (cl-loop for item across value
             append (stagerunner--member-lines (concat indent "-") item indent)))
   (t (list (concat indent (stagerunner--scalar value))))))

(defun stagerunner--member-lines (label value indent)
  "Lines of one member, LABEL then VALUE, nested below INDENT."
  (cond
   ((and (vectorp value) (> (length value) 0)
         (cl-notany (lambda (x) (or (consp x) (vectorp x))) value))
    (list (concat label " " (mapconcat #'stagerunner--scalar value ", "))))
   ((or (stagerunner--object-p value) (and (vectorp value) (> (length value) 0)))
    (cons label (stagerunner--value-lines value (concat indent "  "))))
   ((vectorp value) (list (concat label " []")))
   ((and (stringp value) (string-search "\n" value))
    (cons (concat label " |")
          (mapcar (lambda (line) (concat indent "  " line))
                  (split-string value "\n"))))
   (t (list (concat label " " (stagerunner--scalar value))))))

(defun stagerunner--parse-json (text)
  "TEXT, a JSON document, as a value `jsonrpc' sends back unchanged.
Objects become hash tables, so that `{}' stays an object."
  (json-parse-string text :object-type 'hash-table :array-type 'array
                     :null-object nil :false-object :json-false))


;;;; Errors

(defconst stagerunner--error-names
  '((-32700 . "Parse error") (-32600 . "Invalid request")
    (-32601 . "Method not found") (-32602 . "Invalid params")
    (-32603 . "Internal error") (-32002 . "Server not initialized")
    (-32800 . "Request cancelled") (-32801 . "Content modified")
    (-32803 . "Request failed") (-32010 . "Workspace") (-32011 . "Template")
    (-32012 . "Model") (-32013 . "Storage") (-32014 . "Truncated")
    (-32015 . "Task") (-32016 . "Job") (-32017 . "Budget")
    (-1 . "Server exited"))
  "Names of the error codes of the protocol (section 7.1).")

(defun stagerunner-error-lines (method err)
  "The lines that tell a person about the error ERR of METHOD.
ERR is a JSON-RPC error object (:code :message :data).  The first line
is the message and code; then what went wrong, where, and the fix,
from the error's data."
  (let* ((code (plist-get err :code))
         (data (plist-get err :data))
         (name (alist-get code stagerunner--error-names))
         (head (format "StageRunner: %s failed: %s" method
                       (or (plist-get err :message) name "error")))
         (lines nil))
    (when code
      (setq head (format "%s [%d %s]" head code (or name "error"))))
    (when (stagerunner--object-p data)
      (when-let ((problem (plist-get data :problem)))
        (push (concat "  what: " problem) lines))
      (let ((where (delq nil
                         (list (when-let ((file (plist-get data :file)))
                                 (if (plist-get data :line)
                                     (format "%s:%s" file (plist-get data :line))
                                   file))
                               (plist-get data :field)))))
        (when where
          (push (concat "  where: " (string-join where ", ")) lines)))
      (when-let ((hint (plist-get data :hint)))
        (push (concat "  fix: " hint) lines))
      (when-let ((available (plist-get data :available)))
        (push (concat "  available: "
                      (mapconcat #'stagerunner--scalar available ", "))
              lines))
      (dolist (name (sort (stagerunner--keys data) #'string<))
        (unless (member name '("problem" "file" "line" "field" "hint" "kind"
                               "available" "method" "limit" "size" "offset"
                               "stderr"))
          (push (format "  %s: %s" name
                        (mapconcat #'identity
                                   (stagerunner--value-lines
                                    (plist-get data (stagerunner--key name)))
                                   " "))
                lines)))
      (let ((stderr (plist-get data :stderr)))
        (when (listp stderr)
          (dolist (line stderr)
            (push (concat "  " line) lines)))))
    (cons head (nreverse lines))))

(defun stagerunner--complain (method err)
  "Show the error ERR of METHOD in the echo area and *Messages*."
  (message "%s" (string-join (stagerunner-error-lines method err) "\n")))

(defmacro stagerunner--safely (what &rest body)
  "Run BODY, reporting an error instead of letting it escape; WHAT names it.
Callbacks run inside the process filter: an error escaping one of them
would leave the messages read with it unhandled until more output came."
  (declare (indent 1) (debug (form body)))
  (let ((err (make-symbol "err")))
    `(condition-case-unless-debug ,err
         (progn ,@body)
       (error (message "StageRunner: %s failed: %s" ,what
                       (error-message-string ,err))
              nil))))


;;;; Workspaces

(defvar-local stagerunner--buffer-root nil
  "The workspace root of a buffer made by this package.")

(defun stagerunner--directory (path)
  "PATH, absolute and without a trailing slash."
  (directory-file-name (expand-file-name path)))

(defun stagerunner-template-of (file)
  "The template FILE is, as a plist (:root :stage :id :file), or nil.
Templates live at ROOT/data/1_raw/templates/STAGE/ID.txt."
  (when (and file
             (string-match
              "\\`\\(.*\\)/data/1_raw/templates/\\([^/]+\\)/\\([^/]+\\)\\.txt\\'"
              (expand-file-name file)))
    (let ((root (match-string 1 (expand-file-name file)))
          (stage (match-string 2 (expand-file-name file)))
          (id (match-string 3 (expand-file-name file))))
      (list :root (if (string-empty-p root) "/" root)
            :stage stage :id id
            :file (format "data/1_raw/templates/%s/%s.txt" stage id)))))

(defun stagerunner-workspace-root (&optional path)
  "The workspace root for PATH (default the current buffer's file), or nil.
In order: the root of a buffer this package made, the option
`stagerunner-workspace', the root of a template path, else the nearest
directory above PATH that holds one of `stagerunner-workspace-markers'."
  (let ((start (or path buffer-file-name default-directory)))
    (cond
     ((and (not path) stagerunner--buffer-root) stagerunner--buffer-root)
     (stagerunner-workspace (stagerunner--directory stagerunner-workspace))
     ((stagerunner-template-of start)
      (plist-get (stagerunner-template-of start) :root))
     (t (when-let ((dir (locate-dominating-file
                         (expand-file-name start)
                         (lambda (dir)
                           (and (file-directory-p dir)
                                (cl-some (lambda (marker)
                                           (file-exists-p
                                            (expand-file-name marker dir)))
                                         stagerunner-workspace-markers))))))
          (stagerunner--directory dir))))))

(defun stagerunner--root (&optional path)
  "Return the workspace root for PATH, as `stagerunner-workspace-root' does.
Signal a `user-error' when there is none."
  (or (stagerunner-workspace-root path)
      (user-error "No StageRunner workspace here (no %s above %s); set `stagerunner-workspace'"
                  (string-join stagerunner-workspace-markers " or ")
                  (abbreviate-file-name
                   (or path buffer-file-name default-directory)))))

(defun stagerunner-csv-fields (line)
  "The fields of LINE, a CSV record: commas, quotes, doubled quotes, CR."
  (let ((fields nil) (field nil) (quoted nil) (i 0) (n (length line)))
    (while (< i n)
      (let ((char (aref line i)))
        (cond
         (quoted
          (cond ((and (eq char ?\") (< (1+ i) n) (eq (aref line (1+ i)) ?\"))
                 (push ?\" field)
                 (cl-incf i))
                ((eq char ?\") (setq quoted nil))
                (t (push char field))))
         ((eq char ?\") (setq quoted t))
         ((eq char ?,)
          (push (concat (nreverse field)) fields)
          (setq field nil))
         ((eq char ?\r))
         (t (push char field))))
      (cl-incf i))
    (push (concat (nreverse field)) fields)
    (nreverse fields)))

(cl-defstruct (stagerunner-row (:constructor stagerunner--make-row) (:copier nil))
  "A row of a membership file."
  stage gen-id template-id parent model file line)

(defun stagerunner-parse-membership (text &optional file)
  "The rows of TEXT, the contents of the membership FILE."
  (let ((header nil) (rows nil) (lnum 0))
    (dolist (line (split-string text "\n"))
      (cl-incf lnum)
      (when (string-match-p "[^ \t\r]" line)
        (let ((fields (mapcar #'string-trim (stagerunner-csv-fields line))))
          (if (not header)
              (setq header fields)
            (let ((get (lambda (name)
                         (let ((pos (cl-position name header :test #'equal)))
                           (or (and pos (nth pos fields)) "")))))
              (push (stagerunner--make-row
                     :stage (funcall get "stage")
                     :gen-id (funcall get "gen_id")
                     :template-id (funcall get "template_id")
                     :parent (funcall get "parent_gen_id")
                     :model (funcall get "llm_model_id")
                     :file file :line lnum)
                    rows))))))
    (nreverse rows)))

(defun stagerunner--membership-files (root)
  "The membership files of ROOT: data/membership.csv, then each cohort's."
  (append
   (let ((top (expand-file-name "data/membership.csv" root)))
     (and (file-exists-p top) (list top)))
   (sort (file-expand-wildcards
          (expand-file-name "data/cohorts/*/membership.csv" root))
         #'string<)))

(defun stagerunner-membership (root)
  "Every membership row of the workspace ROOT, in file order."
  (cl-loop for file in (stagerunner--membership-files root)
           append (stagerunner-parse-membership
                   (with-temp-buffer
                     (insert-file-contents file)
                     (buffer-string))
                   file)))

(defconst stagerunner--parent-stage '(("essay" . "draft") ("evaluation" . "essay"))
  "The stage whose generations feed each stage.")

(defun stagerunner--generated-p (root stage gen-id)
  "Whether generation GEN-ID of STAGE exists in ROOT."
  (file-exists-p (expand-file-name
                  (format "data/gens/%s/%s/metadata.json" stage gen-id) root)))

(defun stagerunner-row-for-template (root stage template-id)
  "The membership row of ROOT to render the template TEMPLATE-ID of STAGE with.
That is the first row using it whose parent has been generated (or
that has none), else the first row using it, else nil."
  (let ((parent-stage (cdr (assoc stage stagerunner--parent-stage)))
        (first nil))
    (or (catch 'found
          (dolist (row (stagerunner-membership root))
            (when (and (equal (stagerunner-row-stage row) stage)
                       (equal (stagerunner-row-template-id row) template-id))
              (setq first (or first row))
              (when (or (not parent-stage)
                        (string-empty-p (stagerunner-row-parent row))
                        (stagerunner--generated-p
                         root parent-stage (stagerunner-row-parent row)))
                (throw 'found row)))))
        first)))

(defun stagerunner--membership-file-p (file)
  "Whether FILE is a membership file."
  (string-match-p "/data/\\(?:cohorts/[^/]+/\\)?membership\\.csv\\'"
                  (expand-file-name file)))

(defun stagerunner--row-target (root row)
  "The target of the membership ROW of ROOT."
  (list :root root
        :params (list :stage (stagerunner-row-stage row)
                      :genId (stagerunner-row-gen-id row))
        :label (format "%s/%s" (stagerunner-row-stage row)
                       (stagerunner-row-gen-id row))))

(defun stagerunner-target (&optional gen-id)
  "What a render or run means in the current buffer, as a plist.
The plist has :root, :params (of renderPrompt and runStage), :label and,
in a template buffer, :template.  With GEN-ID, that membership row, or
in a template buffer that id with the template.  Else in a template
buffer the row `stagerunner-row-for-template' picks, or the template
with `stagerunner-model' when no row uses it; in a membership file the
row at point.  Signal a `user-error' when the buffer means nothing."
  (let* ((file buffer-file-name)
         (template (stagerunner-template-of file))
         (root (stagerunner--root)))
    (cond
     ((and gen-id (not (string-empty-p gen-id)))
      (let ((row (cl-find gen-id (stagerunner-membership root)
                          :key #'stagerunner-row-gen-id :test #'equal)))
        (cond
         (row (stagerunner--row-target root row))
         (template
          (list :root root :template template
                :params (append (list :stage (plist-get template :stage)
                                      :templateId (plist-get template :id)
                                      :genId gen-id)
                                (and stagerunner-model
                                     (list :model stagerunner-model)))
                :label (format "%s/%s" (plist-get template :stage) gen-id)))
         (t (user-error "`%s' is not a gen_id of the membership of %s"
                        gen-id root)))))
     (template
      (let ((row (stagerunner-row-for-template
                  root (plist-get template :stage) (plist-get template :id))))
        (if row
            (plist-put (stagerunner--row-target root row) :template template)
          (list :root root :template template
                :params (append (list :stage (plist-get template :stage)
                                      :templateId (plist-get template :id))
                                (and stagerunner-model
                                     (list :model stagerunner-model)))
                :label (format "%s/%s" (plist-get template :stage)
                               (plist-get template :id))))))
     ((and file (stagerunner--membership-file-p file))
      (let* ((lnum (line-number-at-pos))
             (row (cl-find lnum (stagerunner-parse-membership
                                 (buffer-substring-no-properties
                                  (point-min) (point-max))
                                 file)
                           :key #'stagerunner-row-line)))
        (if (and row (not (string-empty-p (stagerunner-row-stage row)))
                 (not (string-empty-p (stagerunner-row-gen-id row))))
            (stagerunner--row-target root row)
          (user-error "Put point on a row of the membership file (not the header)"))))
     (t (user-error "This buffer is not a template (data/1_raw/templates/STAGE/ID.txt) or a membership file; give a gen_id")))))

(defun stagerunner--has-target-p ()
  "Whether the current buffer is a template or a membership file."
  (and buffer-file-name
       (or (stagerunner-template-of buffer-file-name)
           (stagerunner--membership-file-p buffer-file-name))))

(defvar stagerunner--gen-id-history nil
  "Gen ids read from the minibuffer.")

(defun stagerunner--read-gen-id (&optional prompt)
  "Read a gen_id with completion, the rows of this buffer's template first.
PROMPT is the prompt."
  (let* ((root (stagerunner--root))
         (template (stagerunner-template-of buffer-file-name))
         (rows (stagerunner-membership root))
         (own (cl-remove-if-not
               (lambda (row)
                 (and template
                      (equal (stagerunner-row-stage row) (plist-get template :stage))
                      (equal (stagerunner-row-template-id row)
                             (plist-get template :id))))
               rows)))
    (completing-read (or prompt "Generation (gen_id): ")
                     (mapcar #'stagerunner-row-gen-id
                             (append own (cl-set-difference rows own)))
                     nil nil nil 'stagerunner--gen-id-history)))

(defun stagerunner--save-template (target)
  "Save the current buffer if it is the modified template of TARGET."
  (when (and stagerunner-save-before-request
             (plist-get target :template)
             (buffer-modified-p))
    (save-buffer)))


;;;; Connections

(defclass stagerunner-server (jsonrpc-process-connection)
  ((root :initarg :root :reader stagerunner-server-root
         :documentation "The workspace root the server serves.")
   (process :initarg :server-process :reader stagerunner-server-process
            :documentation "The server's process.")
   (info :initform nil :accessor stagerunner-server-info
         :documentation "The result of `initialize'.")
   (state :initform 'starting :accessor stagerunner--state
          :documentation "One of starting, ready, stopping and exited.")
   (last-request-id :initform nil :accessor stagerunner--last-request-id
                    :documentation "The id of the last request sent."))
  :documentation "A `stagerunner serve' process serving one workspace.")

(cl-defmethod jsonrpc-connection-send :before
  ((conn stagerunner-server) &rest args)
  "Note the id of the request CONN is about to send as ARGS.
`jsonrpc-async-request' does not return the id it gives a request;
a `$/cancelRequest' needs it."
  (when (and (plist-get args :id) (plist-get args :method))
    (setf (stagerunner--last-request-id conn) (plist-get args :id))))

(defvar stagerunner--connections (make-hash-table :test #'equal)
  "The connection of each workspace root.")

(defvar stagerunner--stderr-buffers (make-hash-table :test #'equal)
  "The stderr buffer of the last server of each workspace root.")

(defun stagerunner--program ()
  "The absolute file name of `stagerunner-program'.
Signal a `user-error' saying what to set when it cannot be run."
  (let ((found (if (file-name-directory stagerunner-program)
                   ;; A path, absolute or relative to `default-directory'.
                   (let ((file (expand-file-name stagerunner-program)))
                     (and (file-executable-p file)
                          (not (file-directory-p file))
                          file))
                 (executable-find stagerunner-program))))
    (or found
        (user-error "Cannot run `%s': not found or not executable; put stagerunner on `exec-path' or set `stagerunner-program'"
                    stagerunner-program))))

(defun stagerunner-connections ()
  "The connections of the servers that run."
  (let ((all nil))
    (maphash (lambda (_root conn) (push conn all)) stagerunner--connections)
    all))

(defun stagerunner--live-p (conn)
  "Return whether CONN's server is running and taking requests."
  (and conn (jsonrpc-running-p conn)
       (memq (stagerunner--state conn) '(starting ready))))

(defun stagerunner-connection (&optional root)
  "The connection to the server of ROOT (default this buffer's workspace).
A server is started, and initialized, when none runs."
  (let* ((root (stagerunner--directory (or root (stagerunner--root))))
         (conn (gethash root stagerunner--connections)))
    (if (stagerunner--live-p conn)
        conn
      (stagerunner--start root))))

(defun stagerunner--stderr-tail (conn &optional count)
  "The last COUNT (default 10) lines CONN's server wrote to stderr."
  (let* ((buffer (ignore-errors (jsonrpc-stderr-buffer conn)))
         (pipe (and (buffer-live-p buffer) (get-buffer-process buffer))))
    ;; The stderr pipe is a process of its own: what the server wrote
    ;; just before it died may not have been read yet.
    (with-timeout (1 nil)
      (while (and pipe (process-live-p pipe))
        (accept-process-output pipe 0.05)))
    (when (buffer-live-p buffer)
      (with-current-buffer buffer
        (let ((lines (cl-remove-if
                      (lambda (line)
                        (or (string-empty-p line)
                            (string-match-p "\\`Process .* finished\\'" line)))
                      (split-string (buffer-string) "\n"))))
          (last lines (or count 10)))))))

(defun stagerunner--exit-description (conn)
  "What happened to CONN's server process, as a sentence."
  (let ((proc (stagerunner-server-process conn)))
    (pcase (process-status proc)
      ('signal (format "the server was killed by signal %d"
                       (process-exit-status proc)))
      (_ (format "the server exited with code %d" (process-exit-status proc))))))

(defun stagerunner--exit-lines (conn)
  "Lines reporting the exit of CONN's server, with its last stderr lines."
  (append (list (format "StageRunner: %s (workspace %s)"
                        (stagerunner--exit-description conn)
                        (stagerunner-server-root conn)))
          (mapcar (lambda (line) (concat "  " line)) (stagerunner--stderr-tail conn))
          (list (format "  log: M-x stagerunner-log (%s)"
                        (buffer-name (jsonrpc-stderr-buffer conn))))))

(defun stagerunner--events-initargs ()
  "The initargs that size a connection's events buffer, in this jsonrpc's terms."
  ;; Later versions of jsonrpc.el take a config plist and warn about the
  ;; older initarg.
  (if (slot-exists-p 'jsonrpc-connection '-events-buffer-config)
      (list :events-buffer-config (list :size stagerunner-events-buffer-size))
    (list :events-buffer-scrollback-size stagerunner-events-buffer-size)))

(defun stagerunner--start (root)
  "Start and initialize a server for ROOT; return its connection."
  (let* ((program (stagerunner--program))
         (name (format "stagerunner %s" (abbreviate-file-name root)))
         (default-directory (file-name-as-directory root))
         (process-environment (append stagerunner-environment process-environment))
         (proc (make-process
                :name name
                :command (append (list program "serve" "--workspace" root)
                                 stagerunner-program-args)
                :connection-type 'pipe
                :coding 'utf-8-emacs-unix
                :noquery t
                ;; jsonrpc.el finds the stderr buffer by this name.
                :stderr (get-buffer-create (format "*%s stderr*" name))))
         (conn (apply #'make-instance 'stagerunner-server
                      :name name
                      :process proc
                      :server-process proc
                      :root root
                      :notification-dispatcher #'stagerunner--handle-notification
                      :request-dispatcher #'stagerunner--handle-request
                      :on-shutdown #'stagerunner--on-shutdown
                      (stagerunner--events-initargs))))
    (puthash root (jsonrpc-stderr-buffer conn) stagerunner--stderr-buffers)
    (condition-case err
        (setf (stagerunner-server-info conn)
              (jsonrpc-request
               conn :initialize
               (list :processId (emacs-pid)
                     :clientInfo (list :name "stagerunner.el"
                                       :version stagerunner-version)
                     :protocolVersion stagerunner-protocol-version
                     :capabilities
                     (list :stageHandlers
                           (vconcat (mapcar #'car stagerunner-stage-handlers)))
                     :workspaceRoot root)
               :timeout stagerunner-connect-timeout))
      (error
       (setf (stagerunner--state conn) 'exited)
       (let ((lines (if (process-live-p proc)
                        (stagerunner-error-lines
                         "initialize" (stagerunner--condition-error err))
                      (stagerunner--exit-lines conn))))
         (ignore-errors (jsonrpc-shutdown conn))
         (error "%s" (string-join lines "\n")))))
    (setf (stagerunner--state conn) 'ready)
    (puthash root conn stagerunner--connections)
    (jsonrpc-notify conn :initialized nil)
    conn))

(defun stagerunner--condition-error (condition)
  "The JSON-RPC error object of CONDITION, a signalled error."
  (if (eq (car condition) 'jsonrpc-error)
      (let ((alist (cdr condition)))
        (list :code (alist-get 'jsonrpc-error-code alist)
              :message (or (alist-get 'jsonrpc-error-message alist)
                           (and (stringp (cadr condition)) (cadr condition)))
              :data (alist-get 'jsonrpc-error-data alist)))
    (list :message (error-message-string condition))))

(defun stagerunner--on-shutdown (conn)
  "Forget CONN once its process has ended, and say so if nobody asked for it."
  (let ((was (stagerunner--state conn)))
    (setf (stagerunner--state conn) 'exited)
    (when (eq (gethash (stagerunner-server-root conn) stagerunner--connections)
              conn)
      (remhash (stagerunner-server-root conn) stagerunner--connections))
    (stagerunner--jobs-server-gone conn)
    (when (eq was 'ready)
      ;; Reported from a timer: this runs in the process sentinel, and the
      ;; report waits for the last of the server's stderr.
      (run-at-time 0 nil (lambda ()
                           (message "%s" (string-join (stagerunner--exit-lines conn)
                                                      "\n")))))))

(cl-defun stagerunner-request (method params &key root connection on-result on-error)
  "Send the request METHOD (a string or symbol) with PARAMS; return its id.
The server is CONNECTION's, else the one of ROOT (default this
buffer's workspace).  ON-RESULT is called with the result; ON-ERROR
with the error object (:code :message :data), and when it is nil
the error is shown.  Requests do not time out: runs may be long;
`stagerunner-cancel-request' cancels one."
  (let ((conn (or connection (stagerunner-connection root))))
    (jsonrpc-async-request
     ;; jsonrpc.el sends symbols and keywords as method names, not strings.
     conn (if (stringp method) (intern method) method) params
     :success-fn (lambda (result)
                   (when on-result
                     (stagerunner--safely method (funcall on-result result))))
     :error-fn (lambda (err)
                 (stagerunner--safely method
                   (if on-error
                       (funcall on-error err)
                     (stagerunner--complain method err))))
     :timeout nil)
    (stagerunner--last-request-id conn)))

(defun stagerunner-cancel-request (id &optional connection)
  "Ask CONNECTION's server (default this workspace's) to cancel request ID.
The request still gets one answer: -32800, or its result if it was
done first."
  (jsonrpc-notify (or connection (stagerunner-connection)) '$/cancelRequest
                  (list :id id)))


;;;; Server-to-client messages

(defun stagerunner--handle-notification (conn method params)
  "Handle the notification METHOD with PARAMS from CONN's server."
  (stagerunner--safely method
    (pcase method
      ('statusChanged (stagerunner--status-changed conn params))
      ;; Stage handlers run to completion before they answer, so there is
      ;; nothing left to stop when the server gives up on one.
      ('$/cancelRequest nil)
      (_ (run-hook-with-args 'stagerunner-notification-functions
                             conn method params)))))

(defun stagerunner--handle-request (_conn method params)
  "Answer the request METHOD with PARAMS from the server."
  (pcase method
    ('executeStage (stagerunner--execute-stage params))
    (_ (jsonrpc-error :code -32601
                      :message (format "stagerunner.el has no method %s" method)))))

(defun stagerunner--execute-stage (params)
  "Run the client stage handler that PARAMS, of `executeStage', name."
  (let* ((name (plist-get params :handler))
         (handler (cdr (assoc name stagerunner-stage-handlers))))
    (unless handler
      (jsonrpc-error :code -32601
                     :message (format "no stage handler named %s in `stagerunner-stage-handlers'"
                                      name)))
    (let ((value (condition-case err
                     (funcall handler (plist-get params :stage)
                              (plist-get params :context))
                   ;; A handler may answer with an error of its own choosing.
                   (jsonrpc-error (signal (car err) (cdr err)))
                   (error (jsonrpc-error :code -32803
                                         :message (error-message-string err))))))
      (if (and (consp value) (memq (car value) '(:output :flags)))
          (list :output (plist-get value :output)
                :flags (or (plist-get value :flags) (make-hash-table)))
        (list :output value :flags (make-hash-table))))))


;;;; Results buffers

(defvar-local stagerunner--result nil
  "The result shown in a results buffer.")

(defvar-local stagerunner--rerun nil
  "A function that makes the request of a results buffer again.")

(defvar stagerunner-result-mode-map
  (let ((map (make-sparse-keymap)))
    (define-key map "g" #'revert-buffer)
    map)
  "Keymap of `stagerunner-result-mode'.")

(define-derived-mode stagerunner-result-mode special-mode "StageRunner"
  "Major mode of the buffers that show a rendered prompt or a generation.
\\<stagerunner-result-mode-map>\\[revert-buffer] makes the request again.

\\{stagerunner-result-mode-map}"
  (setq-local font-lock-defaults '((("^#.*$" . font-lock-function-name-face))))
  (setq-local revert-buffer-function
              (lambda (_ignore-auto _noconfirm)
                (if stagerunner--rerun
                    (funcall stagerunner--rerun)
                  (user-error "Nothing to do again here")))))

(defun stagerunner--show (kind name lines &optional result root rerun)
  "Show LINES in the buffer of KIND and NAME; return the buffer.
RESULT is kept in `stagerunner--result', ROOT in the buffer's root,
RERUN in `stagerunner--rerun'.  The buffer is displayed, not selected."
  (let ((buffer (get-buffer-create (format "*stagerunner %s: %s*" kind name))))
    (with-current-buffer buffer
      (unless (derived-mode-p 'stagerunner-result-mode)
        (stagerunner-result-mode))
      (let ((inhibit-read-only t))
        (erase-buffer)
        (insert (string-join lines "\n") "\n")
        (goto-char (point-min)))
      (setq stagerunner--result result
            stagerunner--buffer-root root
            stagerunner--rerun rerun))
    (display-buffer buffer '(nil (inhibit-same-window . t)))
    buffer))

(defun stagerunner--text-lines (text placeholder)
  "TEXT as lines, or PLACEHOLDER when TEXT is null."
  (if (stringp text) (split-string text "\n") (list placeholder)))


;;;; Render and run

(defun stagerunner-render-lines (target result)
  "The lines that show the renderPrompt RESULT of TARGET."
  (let ((names (sort (stagerunner--keys (plist-get result :variables)) #'string<)))
    (append
     (list (format "# %s · template %s" (plist-get target :label)
                   (plist-get result :templateId))
           (format "# %s · variables: %s" (plist-get result :templateFile)
                   (if names (string-join names ", ") "(none)"))
           "")
     (stagerunner--text-lines (plist-get result :prompt) ""))))

;;;###autoload
(defun stagerunner-render-prompt (&optional gen-id on-done)
  "Show the prompt of the template being edited, as the server renders it.
The server calls no model and writes nothing (renderPrompt).  The
generation is the first membership row that uses the template (see
`stagerunner-target'), or GEN-ID; with a prefix argument, or outside a
template or membership buffer, it is read from the minibuffer.
ON-DONE, when given, is called with the result and nil, or nil and
the error."
  (interactive
   (list (when (or current-prefix-arg (not (stagerunner--has-target-p)))
           (stagerunner--read-gen-id))))
  (let ((target (stagerunner-target gen-id))
        (buffer (current-buffer)))
    (stagerunner--save-template target)
    (message "StageRunner: rendering %s" (plist-get target :label))
    (stagerunner-request
     "renderPrompt" (plist-get target :params)
     :root (plist-get target :root)
     :on-result
     (lambda (result)
       (stagerunner--show "render" (plist-get target :label)
                          (stagerunner-render-lines target result) result
                          (plist-get target :root)
                          (lambda ()
                            (when (buffer-live-p buffer)
                              (with-current-buffer buffer
                                (stagerunner-render-prompt gen-id)))))
       (message "StageRunner: rendered %s" (plist-get target :label))
       (when on-done (funcall on-done result nil)))
     :on-error
     (lambda (err)
       (stagerunner--complain "renderPrompt" err)
       (when on-done (funcall on-done nil err))))))

(defun stagerunner-run-lines (result)
  "The lines that show the runStage RESULT."
  (let* ((metadata (plist-get result :metadata))
         (facts (delq nil
                      (list
                       (cond ((equal (plist-get metadata :mode) "copy")
                              (format "copy of %s" (plist-get metadata :parent_gen_id)))
                             ((plist-get metadata :model)
                              (format "model %s via %s" (plist-get metadata :model)
                                      (plist-get metadata :provider))))
                       (when-let ((tokens (stagerunner--get metadata :usage
                                                            :total_tokens)))
                         (format "%s tokens" tokens))
                       (when (plist-get result :score)
                         (format "score %s" (plist-get result :score)))
                       (when (eq (plist-get metadata :truncated) t)
                         "truncated at the token limit"))))
         (debug (plist-get result :debug)))
    (append
     (list (format "# runStage %s/%s: %s%s" (plist-get result :stage)
                   (plist-get result :genId) (plist-get result :status)
                   (if (eq (plist-get result :reused) t) " (reused)" "")))
     (and facts (list (concat "# " (string-join facts " · "))))
     (list "" "## files")
     (append (plist-get result :files) nil)
     (list "" "## parsed")
     (stagerunner--text-lines (plist-get result :parsed) "(none: parsing failed)")
     (list "" "## raw")
     (stagerunner--text-lines (plist-get result :raw) "(none: no model call)")
     (and (eq (plist-get result :textTruncated) t)
          (list "(cut here; the files hold the whole text)"))
     (and (stagerunner--object-p debug)
          (cons "" (cons "## debug" (stagerunner--value-lines debug))))
     (list "" "## metadata")
     (stagerunner--value-lines metadata))))

;;;###autoload
(defun stagerunner-run-stage (&optional gen-id force on-done)
  "Run the stage of the template being edited and show the generation.
The generation is chosen as `stagerunner-render-prompt' does, or is
GEN-ID.  An existing generation is shown as it is unless FORCE, which
generates it again.  The buffer shows the status, the files, the
parsed and raw text, and the metadata.  Interactively a prefix
argument forces, two read the gen_id too; outside a template or
membership buffer the gen_id is read.  ON-DONE, when given, is called
with the result and nil, or nil and the error."
  (interactive
   (list (when (or (equal current-prefix-arg '(16))
                   (not (stagerunner--has-target-p)))
           (stagerunner--read-gen-id))
         (and current-prefix-arg t)))
  (let* ((target (stagerunner-target gen-id))
         (params (append (plist-get target :params) (and force (list :force t))))
         (buffer (current-buffer)))
    (stagerunner--save-template target)
    (message "StageRunner: running %s" (plist-get target :label))
    (stagerunner-request
     "runStage" params
     :root (plist-get target :root)
     :on-result
     (lambda (result)
       (let ((name (format "%s/%s" (plist-get result :stage)
                           (plist-get result :genId))))
         (stagerunner--show "run" name (stagerunner-run-lines result) result
                            (plist-get target :root)
                            (lambda ()
                              (when (buffer-live-p buffer)
                                (with-current-buffer buffer
                                  (stagerunner-run-stage gen-id)))))
         (if (equal (plist-get result :status) "success")
             (message "StageRunner: %s: success%s" name
                      (if (eq (plist-get result :reused) t) " (reused)" ""))
           (message "StageRunner: %s ended with status %s%s" name
                    (plist-get result :status)
                    (if-let ((why (stagerunner--get result :debug :llm_error)))
                        (concat ": " why)
                      ""))))
       (when on-done (funcall on-done result nil)))
     :on-error
     (lambda (err)
       (stagerunner--complain "runStage" err)
       (when on-done (funcall on-done nil err))))))


;;;; Validation and Flymake

(defconst stagerunner--severities
  '(("error" . :error) ("warning" . :warning) ("information" . :note))
  "Flymake types of the protocol's severities.")

(defun stagerunner--diagnostic-text (diagnostic)
  "The text shown for DIAGNOSTIC, a validateWorkspace diagnostic."
  (format "%s [%s]" (plist-get diagnostic :message) (plist-get diagnostic :code)))

(defun stagerunner--same-file-p (a b)
  "Whether the file names A and B name the same file."
  (and a b (string= (file-truename a) (file-truename b))))

(defun stagerunner-flymake-diagnostics (result root buffer)
  "Flymake diagnostics of the validateWorkspace RESULT of ROOT, for BUFFER.
Problems of BUFFER's file are placed in BUFFER; the others are
\"foreign\" diagnostics, shown when their file is visited."
  (cl-loop
   for d across (plist-get result :diagnostics)
   for file = (expand-file-name (plist-get d :file) root)
   for line = (max 1 (stagerunner--number (plist-get d :line)))
   for column = (stagerunner--number (plist-get d :column))
   for type = (or (cdr (assoc (plist-get d :severity) stagerunner--severities))
                  :error)
   for text = (stagerunner--diagnostic-text d)
   collect
   (if (stagerunner--same-file-p file (buffer-file-name buffer))
       ;; Protocol columns are 1-based, 0 meaning the whole line, as
       ;; `flymake-diag-region' reads them.
       (let ((region (or (flymake-diag-region buffer line (and (> column 0) column))
                         (with-current-buffer buffer
                           (cons (point-min) (min (point-max) (1+ (point-min))))))))
         (flymake-make-diagnostic buffer (car region) (cdr region) type text d))
     (flymake-make-diagnostic file (cons line column) nil type text d))))

(defvar-local stagerunner--flymake-request nil
  "The id of the validateWorkspace request of the last Flymake check.")

;;;###autoload
(defun stagerunner-flymake (report-fn &rest _args)
  "Report the workspace's problems to Flymake, from `validateWorkspace'.
Call REPORT-FN with the diagnostics of this buffer's workspace: those
of this file in this buffer, the others as foreign diagnostics.  The
server reads the files on disk, so the check is of the saved text."
  (let ((root (stagerunner-workspace-root))
        (buffer (current-buffer)))
    (if (not (and root buffer-file-name))
        (funcall report-fn nil)
      (let (id)
        (setq id (stagerunner-request
                  "validateWorkspace" nil
                  :root root
                  :on-result
                  (lambda (result)
                    ;; A newer check supersedes this one: Flymake refuses
                    ;; the report of a run it no longer waits for.
                    (when (and (buffer-live-p buffer)
                               (equal id (buffer-local-value
                                          'stagerunner--flymake-request buffer)))
                      (with-current-buffer buffer
                        (funcall report-fn (stagerunner-flymake-diagnostics
                                            result root buffer)))))
                  :on-error
                  (lambda (err)
                    (when (and (buffer-live-p buffer)
                               (equal id (buffer-local-value
                                          'stagerunner--flymake-request buffer)))
                      (with-current-buffer buffer
                        (funcall report-fn :panic :explanation
                                 (car (stagerunner-error-lines
                                       "validateWorkspace" err))))))))
        (setq stagerunner--flymake-request id)))))

(defvar-local stagerunner--flymake-was-on nil
  "Whether `flymake-mode' was on before `stagerunner-mode' turned it on.")

(defvar-local stagerunner--saved-backends nil
  "The local `flymake-diagnostic-functions' before `stagerunner-mode', if changed.")

;;;###autoload
(define-minor-mode stagerunner-mode
  "Check this buffer's StageRunner workspace with Flymake.
The backend `stagerunner-flymake' asks the workspace's server for its
problems (validateWorkspace) when the buffer is visited and saved;
checking between saves would report the text on disk, so it does not."
  :lighter " SR"
  (if stagerunner-mode
      (progn
        (setq stagerunner--flymake-was-on flymake-mode)
        (when (memq 'flymake-proc-legacy-flymake
                    (default-value 'flymake-diagnostic-functions))
          ;; The legacy backend knows none of a workspace's files and
          ;; warns so at every check.
          (let ((local (and (local-variable-p 'flymake-diagnostic-functions)
                            flymake-diagnostic-functions)))
            (setq stagerunner--saved-backends (list local))
            (setq-local flymake-diagnostic-functions
                        (append (remq t local)
                                (remq 'flymake-proc-legacy-flymake
                                      (default-value 'flymake-diagnostic-functions))))))
        (add-hook 'flymake-diagnostic-functions #'stagerunner-flymake nil t)
        (setq-local flymake-no-changes-timeout nil)
        (if flymake-mode (flymake-start) (flymake-mode 1)))
    (if (not stagerunner--saved-backends)
        (remove-hook 'flymake-diagnostic-functions #'stagerunner-flymake t)
      (if (car stagerunner--saved-backends)
          (setq flymake-diagnostic-functions (car stagerunner--saved-backends))
        (kill-local-variable 'flymake-diagnostic-functions))
      (setq stagerunner--saved-backends nil))
    (kill-local-variable 'flymake-no-changes-timeout)
    (if stagerunner--flymake-was-on
        (flymake-start)
      (flymake-mode -1))))

;;;###autoload
(defun stagerunner-mode-maybe ()
  "Turn on `stagerunner-mode' when the buffer's file is in a workspace.
Meant for `find-file-hook'."
  (when (and buffer-file-name (stagerunner-workspace-root buffer-file-name))
    (stagerunner-mode 1)))

(defun stagerunner--plural (count word)
  "COUNT and WORD, in the plural unless COUNT is 1."
  (format "%d %s%s" count word (if (eql count 1) "" "s")))

(defun stagerunner-validate-summary (result)
  "The one-line summary of the validateWorkspace RESULT."
  (format "StageRunner: %s: %s, %s (%s, %s)"
          (if (eq (plist-get result :valid) t) "workspace valid" "workspace invalid")
          (stagerunner--plural (stagerunner--number (plist-get result :errors)) "error")
          (stagerunner--plural (stagerunner--number (plist-get result :warnings))
                               "warning")
          (stagerunner--plural (stagerunner--number (plist-get result :templates))
                               "template")
          (stagerunner--plural (stagerunner--number (plist-get result :generations))
                               "generation")))

(defun stagerunner-problem-lines (result)
  "The problems of the validateWorkspace RESULT, one `file:line:col:' line each."
  (cl-loop for d across (plist-get result :diagnostics)
           for line = (max 1 (stagerunner--number (plist-get d :line)))
           for column = (stagerunner--number (plist-get d :column))
           collect (format "%s:%d:%s %s: %s" (plist-get d :file) line
                           (if (> column 0) (format "%d:" column) "")
                           (plist-get d :severity)
                           (stagerunner--diagnostic-text d))))

;;;###autoload
(defun stagerunner-validate (&optional on-done)
  "Check the workspace: every problem of its catalogs, membership and config.
Say how many there are; list them in the buffer *stagerunner
problems*, where \\[next-error] visits them; and check again the
buffers of the workspace where `stagerunner-mode' is on.  ON-DONE,
when given, is called with the result and nil, or nil and the error."
  (interactive)
  (let ((root (stagerunner--root)))
    (stagerunner-request
     "validateWorkspace" nil
     :root root
     :on-result
     (lambda (result)
       (let ((buffer (get-buffer-create "*stagerunner problems*"))
             (lines (stagerunner-problem-lines result)))
         (with-current-buffer buffer
           (let ((inhibit-read-only t))
             (erase-buffer)
             (setq default-directory (file-name-as-directory root))
             (insert (format "validateWorkspace %s\n" root))
             (dolist (line lines) (insert line "\n"))
             (insert (substring (stagerunner-validate-summary result)
                                (length "StageRunner: "))
                     "\n"))
           (compilation-mode)
           (setq stagerunner--buffer-root root))
         (when lines
           (display-buffer buffer '(nil (inhibit-same-window . t)))))
       (dolist (buffer (buffer-list))
         (with-current-buffer buffer
           (when (and stagerunner-mode flymake-mode buffer-file-name
                      (equal (stagerunner-workspace-root) root))
             (flymake-start))))
       (message "%s" (stagerunner-validate-summary result))
       (when on-done (funcall on-done result nil)))
     :on-error
     (lambda (err)
       (stagerunner--complain "validateWorkspace" err)
       (when on-done (funcall on-done nil err))))))


;;;; Jobs

(cl-defstruct (stagerunner-job-view (:constructor stagerunner--make-job-view)
                                    (:copier nil))
  "A job followed in a buffer through its status subscription."
  root job-id connection buffer doc rev revs subscription closed
  server-gone on-end announced)

(defvar stagerunner--job-views (make-hash-table :test #'equal)
  "The view of each followed job, by job id.")

(defvar stagerunner--subscriptions (make-hash-table :test #'equal)
  "The view of each status subscription, by subscription id.")

(defvar stagerunner--early-notifications nil
  "Notifications (CONNECTION . PARAMS) of subscriptions not answered yet.")

(defvar stagerunner--pending-subscriptions 0
  "How many subscribeStatus requests have not been answered yet.")

(defconst stagerunner--ended-states '("done" "failed" "cancelled" "interrupted")
  "The job states that do not change any more without a retry or resume.")

(defun stagerunner--task-names (doc)
  "The task names of the status document DOC, in pipeline order."
  (let ((order (plist-get doc :taskOrder)))
    (if (vectorp order)
        (append order nil)
      (stagerunner--keys (plist-get doc :tasks)))))

(defun stagerunner-task-stage (doc name)
  "The stage to show for task NAME of the status document DOC.
That is the protocol's computeTaskStage: the task's current stage,
else the job's current stage when the task is the job's current one,
else the stage it failed in, else its error's stage, else nil."
  (let* ((task (plist-get (plist-get doc :tasks) (stagerunner--key name)))
         (err (plist-get task :error)))
    (or (plist-get task :currentStage)
        (and (equal (plist-get doc :current) name) (plist-get doc :currentStage))
        (plist-get task :failedStage)
        (and (stagerunner--object-p err) (plist-get err :stage)))))

(defun stagerunner--dollars (value)
  "VALUE, a cost in US dollars, as text."
  (format "$%.4f" (stagerunner--number value)))

(defun stagerunner--first-line (text)
  "The first line of TEXT."
  (car (split-string (format "%s" (or text "")) "\n")))

(defun stagerunner-job-lines (doc)
  "The lines that show the job status document DOC.
A title, the job's state line, a line per task, and once the job
has ended a last line that says how and where its files are."
  (let* ((id (or (plist-get doc :id) "?"))
         (progress (plist-get doc :progress))
         (names (stagerunner--task-names doc))
         (name-width (apply #'max 1 (mapcar #'string-width names)))
         (stage-width (apply #'max 1 (mapcar (lambda (name)
                                               (string-width
                                                (or (stagerunner-task-stage doc name)
                                                    "-")))
                                             names)))
         (task-format (format "%%-%ds  %%-9s  stage %%-%ds  cycle %%d  %%5d tokens  %%s  attempts %%d"
                              name-width stage-width))
         (state (plist-get doc :state))
         (where (format "artifacts in jobs/%s/" id))
         (lines
          (list (format "%s · %s" (or (plist-get doc :name) "?") id)
                (format "state: %s · %d%% · %d/%d tasks · %d tokens · %s"
                        (or state "?")
                        (stagerunner--number (plist-get progress :percent))
                        (stagerunner--number (plist-get progress :tasksDone))
                        (stagerunner--number (plist-get progress :tasksTotal))
                        (stagerunner--number
                         (stagerunner--get doc :tokenUsage :totalTokens))
                        (stagerunner--dollars (plist-get doc :cost)))
                "")))
    (dolist (name names)
      (let ((task (plist-get (plist-get doc :tasks) (stagerunner--key name))))
        (setq lines
              (append lines
                      (list (format task-format name
                                    (concat (or (plist-get task :state) "?")
                                            (if (eq (plist-get task :retrying) t)
                                                " (retrying)" ""))
                                    (or (stagerunner-task-stage doc name) "-")
                                    (stagerunner--number
                                     (plist-get task :refinementAttempts))
                                    (stagerunner--number
                                     (stagerunner--get task :tokenUsage :totalTokens))
                                    (stagerunner--dollars (plist-get task :cost))
                                    (stagerunner--number (plist-get task :attempts))))))))
    (when (member state stagerunner--ended-states)
      (setq lines
            (append
             lines
             (list
              ""
              (pcase state
                ("done" (concat "done · " where))
                ("failed"
                 (let* ((err (plist-get doc :error))
                        (task (or (plist-get err :task) (plist-get doc :current) "?"))
                        (stage (or (plist-get err :stage)
                                   (stagerunner--get doc :tasks (stagerunner--key task)
                                                     :failedStage)
                                   (plist-get doc :currentStage) "?")))
                   (format "failed in %s/%s: %s · %s" task stage
                           (stagerunner--first-line
                            (or (plist-get err :message) "no message"))
                           where)))
                ("cancelled"
                 (let ((cancelled (plist-get doc :cancelled)))
                   (if (plist-get cancelled :task)
                       (format "cancelled in %s/%s · %s" (plist-get cancelled :task)
                               (or (plist-get cancelled :stage) "-") where)
                     (concat "cancelled before it started · " where))))
                (_ (format "%s (left running by a server that stopped; resumeJob continues it) · %s"
                           state where)))))))
    lines))

(defvar-local stagerunner--job-view nil
  "The job view a job buffer shows.")

(defvar stagerunner-job-mode-map
  (let ((map (make-sparse-keymap)))
    (define-key map "c" #'stagerunner-cancel-job)
    (define-key map "g" #'revert-buffer)
    (define-key map "l" #'stagerunner-list-jobs)
    map)
  "Keymap of `stagerunner-job-mode'.")

(define-derived-mode stagerunner-job-mode special-mode "StageRunner-Job"
  "Major mode of a buffer that follows a job live.
The buffer is updated on every `statusChanged' notification of its
subscription; killing it ends the subscription, not the job.

\\{stagerunner-job-mode-map}"
  (setq-local revert-buffer-function
              (lambda (_ignore-auto _noconfirm)
                (when stagerunner--job-view
                  (stagerunner--job-refresh stagerunner--job-view))))
  (add-hook 'kill-buffer-hook #'stagerunner--job-buffer-killed nil t))

(defun stagerunner--job-ended-p (view)
  "Whether the job of VIEW has ended."
  (member (plist-get (stagerunner-job-view-doc view) :state)
          stagerunner--ended-states))

(defun stagerunner--job-render (view)
  "Show the document of VIEW in its buffer; call its on-end once it has ended."
  (let ((buffer (stagerunner-job-view-buffer view))
        (doc (stagerunner-job-view-doc view)))
    (when (and doc (buffer-live-p buffer))
      (with-current-buffer buffer
        (let ((inhibit-read-only t)
              (line (line-number-at-pos))
              (lines (stagerunner-job-lines doc)))
          (when (and (stagerunner-job-view-server-gone view)
                     (not (stagerunner--job-ended-p view)))
            (setq lines (append lines
                                (list "" (format "the server stopped: no more updates (M-x stagerunner-job-status %s follows it again)"
                                                 (stagerunner-job-view-job-id view))))))
          (erase-buffer)
          (insert (string-join lines "\n") "\n")
          (goto-char (point-min))
          (forward-line (1- line)))))
    (when (and doc (stagerunner--job-ended-p view)
               (not (stagerunner-job-view-announced view)))
      (setf (stagerunner-job-view-announced view) t)
      (when (stagerunner-job-view-on-end view)
        (stagerunner--safely "the job's end"
          (funcall (stagerunner-job-view-on-end view) view))))))

(defun stagerunner--job-take (view doc)
  "Show DOC in VIEW when its rev is above the one shown."
  (let ((rev (plist-get doc :rev))
        (held (stagerunner-job-view-rev view)))
    (when (and (stagerunner--object-p doc) (numberp rev)
               (or (null held) (> rev held)))
      (setf (stagerunner-job-view-doc view) doc
            (stagerunner-job-view-rev view) rev
            (stagerunner-job-view-revs view)
            (append (stagerunner-job-view-revs view) (list rev)))
      (stagerunner--job-render view))))

(defun stagerunner--job-apply (view params)
  "Apply the statusChanged PARAMS to VIEW (snapshot delivery)."
  (unless (stagerunner-job-view-closed view)
    (let ((rev (plist-get params :rev))
          (held (stagerunner-job-view-rev view)))
      (when (and (numberp rev) (or (null held) (> rev held)))
        (if (stagerunner--object-p (plist-get params :snapshot))
            (stagerunner--job-take view (plist-get params :snapshot))
          ;; A patch, which this client did not ask for: resync.
          (stagerunner--job-refresh view))))))

(defun stagerunner--status-changed (conn params)
  "Route the statusChanged PARAMS from CONN to the view of its subscription."
  (let ((view (gethash (plist-get params :subscriptionId) stagerunner--subscriptions)))
    (cond
     (view (stagerunner--job-apply view params))
     ((> stagerunner--pending-subscriptions 0)
      (setq stagerunner--early-notifications
            (append stagerunner--early-notifications (list (cons conn params))))))))

(defun stagerunner--job-subscribe (view)
  "Subscribe VIEW to its job's status; apply what came before the answer."
  (let ((conn (stagerunner-job-view-connection view)))
    (cl-incf stagerunner--pending-subscriptions)
    (let ((settle
           (lambda (subscription)
             (cl-decf stagerunner--pending-subscriptions)
             (let ((kept (cl-loop for (c . p) in stagerunner--early-notifications
                                  when (and (eq c conn) subscription
                                            (equal (plist-get p :subscriptionId)
                                                   subscription))
                                  collect p)))
               (setq stagerunner--early-notifications
                     (and (> stagerunner--pending-subscriptions 0)
                          (cl-remove-if (lambda (entry)
                                          (and (eq (car entry) conn)
                                               (equal (plist-get (cdr entry)
                                                                 :subscriptionId)
                                                      subscription)))
                                        stagerunner--early-notifications)))
               kept))))
      (stagerunner-request
       "subscribeStatus" (list :jobId (stagerunner-job-view-job-id view)
                               :delivery "snapshot")
       :connection conn
       :on-result
       (lambda (result)
         (let* ((subscription (plist-get result :subscriptionId))
                (kept (funcall settle subscription)))
           (if (stagerunner-job-view-closed view)
               (stagerunner-request "unsubscribeStatus"
                                    (list :subscriptionId subscription)
                                    :connection conn :on-error #'ignore)
             (setf (stagerunner-job-view-subscription view) subscription)
             (puthash subscription view stagerunner--subscriptions)
             (stagerunner--job-take view (plist-get result :snapshot))
             (dolist (params kept)
               (stagerunner--job-apply view params)))))
       :on-error
       (lambda (err)
         (funcall settle nil)
         (stagerunner--complain "subscribeStatus" err))))))

(defun stagerunner--job-refresh (view)
  "Take the document of VIEW's job from getStatus."
  (when (stagerunner--live-p (stagerunner-job-view-connection view))
    (stagerunner-request
     "getStatus" (list :jobId (stagerunner-job-view-job-id view))
     :connection (stagerunner-job-view-connection view)
     :on-result (lambda (result)
                  (stagerunner--job-take view (plist-get result :status))))))

(defun stagerunner--job-close (view)
  "End VIEW: forget it and end its subscription, leaving the job running."
  (unless (stagerunner-job-view-closed view)
    (setf (stagerunner-job-view-closed view) t)
    (when (eq (gethash (stagerunner-job-view-job-id view) stagerunner--job-views) view)
      (remhash (stagerunner-job-view-job-id view) stagerunner--job-views))
    (when-let ((subscription (stagerunner-job-view-subscription view)))
      (remhash subscription stagerunner--subscriptions)
      (setf (stagerunner-job-view-subscription view) nil)
      (when (stagerunner--live-p (stagerunner-job-view-connection view))
        (stagerunner-request "unsubscribeStatus" (list :subscriptionId subscription)
                             :connection (stagerunner-job-view-connection view)
                             :on-error #'ignore)))))

(defun stagerunner--job-buffer-killed ()
  "End the view of the job buffer being killed."
  (when stagerunner--job-view
    (stagerunner--job-close stagerunner--job-view)))

(defun stagerunner--jobs-server-gone (conn)
  "Tell the views that follow jobs through CONN that no update will come."
  (maphash (lambda (_id view)
             (when (eq (stagerunner-job-view-connection view) conn)
               (when-let ((subscription (stagerunner-job-view-subscription view)))
                 (remhash subscription stagerunner--subscriptions))
               (setf (stagerunner-job-view-server-gone view) t
                     (stagerunner-job-view-subscription view) nil)
               (stagerunner--job-render view)))
           stagerunner--job-views)
  (setq stagerunner--early-notifications
        (cl-remove-if (lambda (entry) (eq (car entry) conn))
                      stagerunner--early-notifications)))

(defun stagerunner-follow-job (root job-id &optional on-end)
  "Show the job JOB-ID of the workspace ROOT in a buffer that follows it live.
ON-END is called with the view once the job has ended.  Return the view."
  (let ((view (gethash job-id stagerunner--job-views)))
    (if (and view (not (stagerunner-job-view-closed view))
             (not (stagerunner-job-view-server-gone view))
             (buffer-live-p (stagerunner-job-view-buffer view)))
        (progn
          (when on-end (setf (stagerunner-job-view-on-end view) on-end))
          (pop-to-buffer (stagerunner-job-view-buffer view))
          view)
      (when view (stagerunner--job-close view))
      (let ((buffer (get-buffer-create (format "*stagerunner job: %s*" job-id))))
        (setq view (stagerunner--make-job-view
                    :root root :job-id job-id
                    :connection (stagerunner-connection root)
                    :buffer buffer :on-end on-end))
        (puthash job-id view stagerunner--job-views)
        (with-current-buffer buffer
          (let ((old stagerunner--job-view))
            ;; A buffer reused from a view that ended with its server.
            (when old (stagerunner--job-close old)))
          (unless (derived-mode-p 'stagerunner-job-mode)
            (stagerunner-job-mode))
          (setq stagerunner--job-view view
                stagerunner--buffer-root root)
          (let ((inhibit-read-only t))
            (erase-buffer)
            (insert (format "job %s\nstate: waiting for the server\n" job-id))))
        (pop-to-buffer buffer)
        (stagerunner--job-subscribe view)
        view))))

(defun stagerunner--job-ids (root)
  "The job ids of the workspace ROOT's jobs folder, newest first."
  (let ((dir (expand-file-name "jobs" root)))
    (and (file-directory-p dir)
         (sort (directory-files dir nil "\\`[^.]") #'string>))))

(defun stagerunner--current-job ()
  "The job id meant here: of this job buffer or the jobs list row at point."
  (cond (stagerunner--job-view (stagerunner-job-view-job-id stagerunner--job-view))
        ((derived-mode-p 'stagerunner-jobs-mode) (tabulated-list-get-id))))

(defun stagerunner--read-job-id (prompt)
  "Read a job id of this workspace with PROMPT, defaulting to the one here."
  (let ((here (stagerunner--current-job)))
    (completing-read (if here (format "%s (default %s): " prompt here)
                       (concat prompt ": "))
                     (stagerunner--job-ids (stagerunner--root))
                     nil nil nil nil here)))

(defun stagerunner--pipeline-file-p (file)
  "Return whether FILE is named like a pipeline file."
  (and file (string-match-p "\\.pipeline\\.\\(?:ya?ml\\|json\\)\\'" file)))

(defvar stagerunner--input-history nil
  "Pipeline inputs read from the minibuffer.")

(defun stagerunner--read-pipeline-args ()
  "Read the arguments of `stagerunner-run-pipeline'."
  (let* ((root (stagerunner--root))
         (here (and (stagerunner--pipeline-file-p buffer-file-name) buffer-file-name))
         (file (read-file-name "Pipeline file: "
                               (if here (file-name-directory here)
                                 (let ((dir (expand-file-name "pipelines" root)))
                                   (file-name-as-directory
                                    (if (file-directory-p dir) dir root))))
                               here t (and here (file-name-nondirectory here))))
         (input (read-string "Input (JSON): " nil 'stagerunner--input-history "{}")))
    (list file input)))

;;;###autoload
(defun stagerunner-run-pipeline (file &optional input on-done)
  "Run the pipeline FILE as a job and follow it live in a buffer.
FILE is the pipeline file, absolute or relative to the workspace.
INPUT is the job's input: JSON text, or a value `jsonrpc' can send;
nil means {}.  The buffer shows the job's state, its progress, a line
per task, and how it ended.  ON-DONE, when given, is called with the
final status document and nil once the job has ended, or nil and the
error when it could not start."
  (interactive (stagerunner--read-pipeline-args))
  (let* ((absolute (and (file-name-absolute-p file) (expand-file-name file)))
         (root (stagerunner--root absolute))
         (pipeline (if (and absolute
                            (string-prefix-p (file-name-as-directory root) absolute))
                       (file-relative-name absolute root)
                     file))
         (value (cond ((null input) (make-hash-table))
                      ((stringp input)
                       (if (string-blank-p input)
                           (make-hash-table)
                         (stagerunner--parse-json input)))
                      (t input))))
    (when-let ((visiting (find-buffer-visiting (expand-file-name pipeline root))))
      (when (buffer-modified-p visiting)
        (with-current-buffer visiting (save-buffer))))
    (message "StageRunner: starting %s" pipeline)
    (stagerunner-request
     "runPipeline" (list :pipeline pipeline :input value)
     :root root
     :on-result
     (lambda (result)
       (stagerunner-follow-job root (plist-get result :jobId)
                               (lambda (view)
                                 (when on-done
                                   (funcall on-done (stagerunner-job-view-doc view)
                                            nil)))))
     :on-error
     (lambda (err)
       (stagerunner--complain "runPipeline" err)
       (when on-done (funcall on-done nil err))))))

;;;###autoload
(defun stagerunner-job-status (job-id &optional on-done)
  "Follow the job JOB-ID of this workspace live in a buffer.
ON-DONE, when given, is called with the status document and nil
once the job has ended, or nil and the error."
  (interactive (list (stagerunner--read-job-id "Job")))
  (let ((root (stagerunner--root)))
    (stagerunner-request
     "getStatus" (list :jobId job-id)
     :root root
     :on-result
     (lambda (result)
       (let ((view (stagerunner-follow-job
                    root job-id
                    (lambda (view)
                      (when on-done
                        (funcall on-done (stagerunner-job-view-doc view) nil))))))
         (unless (stagerunner-job-view-doc view)
           (stagerunner--job-take view (plist-get result :status)))))
     :on-error
     (lambda (err)
       (stagerunner--complain "getStatus" err)
       (when on-done (funcall on-done nil err))))))

;;;###autoload
(defun stagerunner-cancel-job (job-id &optional on-done)
  "Cancel the job JOB-ID: by default the job of this buffer or of this row.
The answer comes once the job has stopped.  ON-DONE, when given, is
called with its status document and nil, or nil and the error."
  (interactive (list (or (stagerunner--current-job)
                         (stagerunner--read-job-id "Cancel job"))))
  (let ((root (stagerunner--root)))
    (stagerunner-request
     "cancelJob" (list :jobId job-id)
     :root root
     :on-result
     (lambda (result)
       (when-let ((view (gethash job-id stagerunner--job-views)))
         (stagerunner--job-take view (plist-get result :status)))
       (stagerunner--jobs-list-refresh root)
       (message "StageRunner: job %s cancelled" job-id)
       (when on-done (funcall on-done (plist-get result :status) nil)))
     :on-error
     (lambda (err)
       (stagerunner--complain "cancelJob" err)
       (when on-done (funcall on-done nil err))))))

(defvar-local stagerunner--jobs-state nil
  "The job state a jobs list shows, or nil for all.")

(defvar stagerunner-jobs-mode-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "RET") #'stagerunner-jobs-follow)
    (define-key map "c" #'stagerunner-cancel-job)
    map)
  "Keymap of `stagerunner-jobs-mode'.")

(define-derived-mode stagerunner-jobs-mode tabulated-list-mode "StageRunner-Jobs"
  "Major mode of the list of a workspace's jobs, newest first.
\\<stagerunner-jobs-mode-map>\\[stagerunner-jobs-follow] follows the job at point, \
\\[stagerunner-cancel-job] cancels it.

\\{stagerunner-jobs-mode-map}"
  (setq tabulated-list-format [("Job" 23 t) ("Name" 12 t) ("State" 10 t)
                               ("%" 4 t :right-align t) ("Task/stage" 26 nil)
                               ("Cost" 9 nil :right-align t) ("Updated" 24 t)])
  (setq tabulated-list-sort-key nil)
  (setq-local revert-buffer-function
              (lambda (_ignore-auto _noconfirm)
                (stagerunner--jobs-list-refresh stagerunner--buffer-root)))
  (tabulated-list-init-header))

(defun stagerunner-jobs-entry (job)
  "The `tabulated-list-entries' entry of JOB, a listJobs job."
  (let ((task (plist-get job :current))
        (stage (plist-get job :currentStage)))
    (list (plist-get job :id)
          (vector (plist-get job :id)
                  (or (plist-get job :name) "?")
                  (or (plist-get job :state) "?")
                  (format "%d%%" (stagerunner--number
                                  (stagerunner--get job :progress :percent)))
                  (cond ((and task stage) (format "%s/%s" task stage))
                        (task task)
                        (t "-"))
                  (stagerunner--dollars (plist-get job :cost))
                  (or (plist-get job :lastUpdated) "")))))

(defun stagerunner--jobs-list-refresh (root &optional on-done)
  "Fill the jobs list of ROOT again, if it exists; ON-DONE as in the command."
  (let ((buffer (get-buffer "*stagerunner jobs*")))
    (when (and (buffer-live-p buffer)
               (equal (buffer-local-value 'stagerunner--buffer-root buffer) root))
      (let ((state (buffer-local-value 'stagerunner--jobs-state buffer)))
        (stagerunner-request
         "listJobs" (and state (list :state state))
         :root root
         :on-result
         (lambda (result)
           (when (buffer-live-p buffer)
             (with-current-buffer buffer
               (setq tabulated-list-entries
                     (mapcar #'stagerunner-jobs-entry (plist-get result :jobs)))
               (tabulated-list-print t)))
           (when on-done (funcall on-done result nil)))
         :on-error
         (lambda (err)
           (stagerunner--complain "listJobs" err)
           (when on-done (funcall on-done nil err))))))))

;;;###autoload
(defun stagerunner-list-jobs (&optional state on-done)
  "List the jobs of this workspace, newest first, in *stagerunner jobs*.
With STATE (read with a prefix argument), only the jobs in that state.
ON-DONE, when given, is called with the listJobs result and nil, or
nil and the error."
  (interactive
   (list (when current-prefix-arg
           (completing-read "Job state: " '("pending" "running" "done" "failed"
                                            "cancelled" "interrupted")
                            nil t))))
  (let ((root (stagerunner--root))
        (buffer (get-buffer-create "*stagerunner jobs*")))
    (with-current-buffer buffer
      (unless (derived-mode-p 'stagerunner-jobs-mode)
        (stagerunner-jobs-mode))
      (setq stagerunner--buffer-root root
            stagerunner--jobs-state (and state (not (string-empty-p state)) state)
            default-directory (file-name-as-directory root)))
    (stagerunner--jobs-list-refresh root on-done)
    (pop-to-buffer buffer)))

(defun stagerunner-jobs-follow ()
  "Follow the job at point in its own buffer."
  (interactive)
  (let ((id (or (tabulated-list-get-id) (user-error "No job on this line"))))
    (stagerunner-job-status id)))


;;;; Lifecycle

(defun stagerunner--wait-for-exit (proc seconds)
  "Wait up to SECONDS for PROC to exit; return whether it did."
  (with-timeout (seconds nil)
    (while (process-live-p proc)
      (accept-process-output proc 0.05))
    t))

(defun stagerunner--stop-connection (conn)
  "Send shutdown and exit to CONN's server and wait for it; return its status.
The status is the process's exit code, or nil if it had to be killed."
  (let ((proc (stagerunner-server-process conn)))
    (when (jsonrpc-running-p conn)
      (setf (stagerunner--state conn) 'stopping)
      (condition-case nil
          (jsonrpc-request conn :shutdown nil :timeout stagerunner-connect-timeout)
        (jsonrpc-error nil))
      (when (process-live-p proc)
        (jsonrpc-notify conn :exit nil)))
    (let ((exited (stagerunner--wait-for-exit proc stagerunner-connect-timeout)))
      ;; Waits for jsonrpc.el's sentinel, which kills a process that is
      ;; still there.
      (jsonrpc-shutdown conn)
      (and exited (eq (process-status proc) 'exit) (process-exit-status proc)))))

;;;###autoload
(defun stagerunner-stop ()
  "Send shutdown and exit to every server, and wait for them to end.
Running jobs are cancelled; `resumeJob' continues them later.  The next
command starts a server again.  Return an alist of each workspace
root and its server's exit status (nil when it had to be killed)."
  (interactive)
  (let ((stopped (mapcar (lambda (conn)
                           (cons (stagerunner-server-root conn)
                                 (stagerunner--stop-connection conn)))
                         (stagerunner-connections))))
    (message "StageRunner: %s stopped%s"
             (stagerunner--plural (length stopped) "server")
             (if (cl-every (lambda (entry) (eql (cdr entry) 0)) stopped)
                 ""
               (format " (exit statuses %s)"
                       (mapconcat (lambda (entry) (format "%s" (cdr entry)))
                                  stopped ", "))))
    stopped))

(defun stagerunner--kill-emacs ()
  "Send shutdown and exit to every server before Emacs exits."
  (let ((conns (cl-remove-if-not #'jsonrpc-running-p (stagerunner-connections))))
    (dolist (conn conns)
      (setf (stagerunner--state conn) 'stopping)
      (ignore-errors
        (jsonrpc-async-request conn :shutdown nil :timeout nil)
        (jsonrpc-notify conn :exit nil)))
    ;; The server answers what it has read and exits 0 after exit; a
    ;; short wait lets it do so before Emacs closes the pipes.
    (with-timeout (2 nil)
      (while (cl-some (lambda (conn) (process-live-p (stagerunner-server-process conn))) conns)
        (accept-process-output nil 0.05)))))

(add-hook 'kill-emacs-hook #'stagerunner--kill-emacs)

;;;###autoload
(defun stagerunner-log (&optional root)
  "Show the stderr of the server of ROOT (default this buffer's workspace)."
  (interactive)
  (let* ((root (stagerunner--directory (or root (stagerunner--root))))
         (buffer (gethash root stagerunner--stderr-buffers)))
    (unless (buffer-live-p buffer)
      (user-error "No server has run for %s yet" root))
    (display-buffer buffer)
    buffer))

;;;###autoload
(defun stagerunner-events (&optional root)
  "Show the JSON-RPC messages of the server of ROOT (default this workspace's)."
  (interactive)
  (let ((buffer (jsonrpc-events-buffer (stagerunner-connection root))))
    (display-buffer buffer)
    buffer))

(defun stagerunner--jsonrpc-version ()
  "The version of the `jsonrpc' library in use, or nil."
  (ignore-errors
    (require 'lisp-mnt)
    (let ((file (locate-file "jsonrpc" load-path '(".el" ".el.gz"))))
      (with-temp-buffer
        (insert-file-contents file)
        (lm-header "Version")))))

;;;###autoload
(defun stagerunner-check ()
  "Check that everything StageRunner needs is in place, and say what is not.
The server executable and its version, the workspace root, a server
that answers initialize, and the workspace's problems.  Return the
lines of the report, which is also shown in *stagerunner check*."
  (interactive)
  (let ((lines nil)
        (root (stagerunner-workspace-root)))
    (cl-flet ((say (status text) (push (format "%-7s %s" status text) lines)))
      (say "ok" (format "Emacs %s, jsonrpc %s" emacs-version
                        (or (stagerunner--jsonrpc-version) "(version unknown)")))
      (let ((program (ignore-errors (stagerunner--program))))
        (if (not program)
            (say "error" (format "server: `%s' is not executable; put stagerunner on `exec-path' or set `stagerunner-program'"
                                 stagerunner-program))
          (say "ok" (format "server: %s" program))
          (condition-case err
              (say "ok" (format "version: %s" (car (process-lines program "--version"))))
            (error (say "error" (format "version: `%s --version' failed: %s"
                                        program (error-message-string err)))))
          (if (not root)
              (say "error" (format "workspace: none found above %s (markers: %s); set `stagerunner-workspace'"
                                   (abbreviate-file-name
                                    (or buffer-file-name default-directory))
                                   (string-join stagerunner-workspace-markers ", ")))
            (say "ok" (format "workspace: %s" root))
            (condition-case err
                (let* ((conn (stagerunner-connection root))
                       (info (stagerunner-server-info conn)))
                  (say "ok" (format "initialize: protocol %s, %s %s, framing %s, root %s"
                                    (plist-get info :protocolVersion)
                                    (stagerunner--get info :serverInfo :name)
                                    (stagerunner--get info :serverInfo :version)
                                    (stagerunner--get info :capabilities :framing)
                                    (stagerunner--get info :workspace :root)))
                  (condition-case err
                      (let ((result (jsonrpc-request conn :validateWorkspace nil
                                                     :timeout stagerunner-connect-timeout)))
                        (say (if (eq (plist-get result :valid) t) "ok" "warning")
                             (concat "problems: "
                                     (substring (stagerunner-validate-summary result)
                                                (length "StageRunner: ")))))
                    (error (say "error" (concat "problems: "
                                                (string-join
                                                 (stagerunner-error-lines
                                                  "validateWorkspace"
                                                  (stagerunner--condition-error err))
                                                 "\n"))))))
              (error (say "error" (concat "initialize: " (error-message-string err)))))
            (when-let ((log (gethash root stagerunner--stderr-buffers)))
              (say "info" (format "log: %s (M-x stagerunner-log)" (buffer-name log))))))))
    (setq lines (nreverse lines))
    (with-current-buffer (get-buffer-create "*stagerunner check*")
      (let ((inhibit-read-only t))
        (erase-buffer)
        (insert "StageRunner check\n")
        (dolist (line lines) (insert line "\n")))
      (special-mode)
      (display-buffer (current-buffer)))
    lines))


;;;; Key bindings

;;;###autoload (autoload 'stagerunner-command-map "stagerunner" nil t 'keymap)
(defvar stagerunner-command-map
  (let ((map (make-sparse-keymap)))
    (define-key map "r" #'stagerunner-render-prompt)
    (define-key map "x" #'stagerunner-run-stage)
    (define-key map "v" #'stagerunner-validate)
    (define-key map "m" #'stagerunner-mode)
    (define-key map "p" #'stagerunner-run-pipeline)
    (define-key map "s" #'stagerunner-job-status)
    (define-key map "j" #'stagerunner-list-jobs)
    (define-key map "c" #'stagerunner-cancel-job)
    (define-key map "h" #'stagerunner-check)
    (define-key map "l" #'stagerunner-log)
    (define-key map "q" #'stagerunner-stop)
    map)
  "Keymap of the StageRunner commands, for a prefix key of your choice.")
(fset 'stagerunner-command-map stagerunner-command-map)

(provide 'stagerunner)
;;; stagerunner.el ends here
