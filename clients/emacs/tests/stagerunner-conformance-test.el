;;; stagerunner-conformance-test.el --- The protocol as jsonrpc.el users speak it -*- lexical-binding: t; -*-

;;; Commentary:

;; The server driven the way jsonrpc.el programs drive servers, without
;; the package: `make-process' on pipes, a `jsonrpc-process-connection',
;; `jsonrpc-request', `jsonrpc-async-request', `jsonrpc-notify' with nil
;; params for parameterless methods, the dispatchers, `jsonrpc-shutdown'.

;;; Code:

(require 'stagerunner-test-helpers)

(defclass srt-connection (jsonrpc-process-connection)
  ((server-process :initarg :server-process
                   :documentation "The server's process.")
   (requests :initform nil
             :documentation "(ID . METHOD) of every request sent, newest first.")
   (replies :initform nil
            :documentation "The ids of the server's requests answered, newest first."))
  :documentation "A connection that remembers the ids it sends.")

(cl-defmethod jsonrpc-connection-send :before ((conn srt-connection) &rest args)
  "Remember the id of a request or reply CONN sends as ARGS."
  (let ((id (plist-get args :id)))
    (when id
      (if (plist-get args :method)
          (push (cons id (plist-get args :method)) (oref conn requests))
        (push id (oref conn replies))))))

(defvar srt--counter 0
  "Numbers the connections, for their buffer names.")

(defun srt-connect (directory &rest initargs)
  "Start `stagerunner serve' in DIRECTORY; a connection made with INITARGS."
  (let* ((name (format "srt-%d" (cl-incf srt--counter)))
         (default-directory (file-name-as-directory directory))
         (process (make-process :name name
                                :command (list (srt-bin) "serve")
                                :connection-type 'pipe
                                :coding 'utf-8-emacs-unix
                                :noquery t
                                :stderr (get-buffer-create
                                         (format "*%s stderr*" name)))))
    (apply #'make-instance 'srt-connection :name name :process process
           :server-process process initargs)))

(defun srt-initialize (conn root &rest more)
  "Send CONN's initialize for the workspace ROOT, with MORE params; the result."
  (prog1 (jsonrpc-request conn :initialize
                          (append (list :processId (emacs-pid)
                                        :clientInfo '(:name "ert" :version "1")
                                        :protocolVersion "1.0"
                                        :workspaceRoot root)
                                  more))
    (jsonrpc-notify conn :initialized nil)))

(defun srt-error-of (conn method params)
  "The error object (:code :message :data) CONN's request METHOD gets."
  (condition-case err
      (progn (jsonrpc-request conn method params)
             (ert-fail (format "%s succeeded" method)))
    (jsonrpc-error (list :code (alist-get 'jsonrpc-error-code (cdr err))
                         :message (alist-get 'jsonrpc-error-message (cdr err))
                         :data (alist-get 'jsonrpc-error-data (cdr err))))))

(defun srt-close (conn)
  "End CONN: shutdown and exit, then jsonrpc.el's own cleanup."
  (when (jsonrpc-running-p conn)
    (ignore-errors (jsonrpc-request conn :shutdown nil :timeout 10))
    (ignore-errors (jsonrpc-notify conn :exit nil))
    (let ((process (oref conn server-process)))
      (with-timeout (10 nil)
        (while (process-live-p process) (accept-process-output process 0.05)))))
  (jsonrpc-shutdown conn t))

(defmacro srt-with-connection (spec &rest body)
  "Run BODY with (VAR DIRECTORY INITARGS...) SPEC bound, then close VAR."
  (declare (indent 1) (debug ((symbolp form &rest form) body)))
  (let ((var (car spec)))
    `(let ((,var (srt-connect ,@(cdr spec))))
       (unwind-protect (progn ,@body)
         (srt-close ,var)))))

(defconst srt-methods
  '("cancelJob" "getArtifact" "getStatus" "initialize" "listJobs" "listTemplates"
    "ping" "renderPrompt" "resumeJob" "retryTask" "runPipeline" "runStage" "runTask"
    "shutdown" "subscribeStatus" "unsubscribeStatus" "validateWorkspace")
  "The request methods of protocol 1.0.")

(ert-deftest stagerunner-conformance/initialize ()
  "Initialize names the workspace; the capabilities are also under experimental."
  (let ((ws (srt-workspace)))
    (srt-with-connection (conn temporary-file-directory)
      (let* ((result (srt-initialize conn ws :capabilities nil))
             (capabilities (plist-get result :capabilities))
             (methods (append (plist-get capabilities :methods) nil)))
        (should (equal (plist-get result :protocolVersion) "1.0"))
        (should (equal (stagerunner--get result :serverInfo :name) "stagerunner"))
        (should (stringp (stagerunner--get result :serverInfo :version)))
        (should (equal (stagerunner--get result :workspace :root) ws))
        (should (equal (plist-get capabilities :framing) "lsp"))
        (should (eq (plist-get capabilities :batches) t))
        (should (eq (plist-get capabilities :cancellation) t))
        (should (equal (plist-get capabilities :maxMessageSize) 67108864))
        (should (equal (cl-set-difference srt-methods methods :test #'equal) nil))
        (should (equal methods (sort (copy-sequence methods) #'string<)))
        (should (equal (sort (append (plist-get capabilities :notifications) nil)
                             #'string<)
                       '("$/cancelRequest" "exit" "initialized")))
        (let ((experimental (stagerunner--get capabilities :experimental :stagerunner)))
          (should (equal (plist-get experimental :framing) "lsp"))
          (should (equal (append (plist-get experimental :methods) nil) methods)))
        (let ((again (srt-error-of conn :initialize nil)))
          (should (equal (plist-get again :code) -32600))
          (should (equal (plist-get again :message)
                         "Invalid Request: 'initialize' was already received")))))))

(ert-deftest stagerunner-conformance/initialize-lsp-style ()
  "The workspace from rootUri, initializationOptions, rootPath, workspaceFolders."
  (let ((ws (srt-workspace)))
    (dolist (params `((:rootUri ,(concat "file://" ws))
                      (:initializationOptions (:workspaceRoot ,ws))
                      (:rootPath ,ws)
                      (:workspaceFolders [(:uri ,(concat "file://" ws) :name "ws")])
                      ;; workspaceRoot wins over the others.
                      (:workspaceRoot ,ws :rootUri "file:///nonexistent")))
      (srt-with-connection (conn temporary-file-directory)
        (let ((result (jsonrpc-request conn :initialize
                                       (append '(:protocolVersion "1.0") params))))
          (should (equal (list params (stagerunner--get result :workspace :root))
                         (list params ws)))
          (should (equal (plist-get (jsonrpc-request conn :validateWorkspace nil)
                                    :root)
                         ws)))))))

(ert-deftest stagerunner-conformance/parameterless-methods ()
  "Ping, listTemplates, validateWorkspace and listJobs with nil, [] and {} params."
  (let ((ws (srt-workspace)))
    (srt-with-connection (conn ws)
      (srt-initialize conn ws)
      (should (equal (jsonrpc-request conn :ping nil) nil))
      (should (equal (jsonrpc-request conn :ping '(:echo "héllo · ✓")) '(:echo "héllo · ✓")))
      (should (equal (jsonrpc-request conn :ping '(:echo nil)) '(:echo nil)))
      (let ((templates (plist-get (jsonrpc-request conn :listTemplates nil) :templates)))
        (should (equal (mapcar (lambda (tm) (list (plist-get tm :stage) (plist-get tm :id)))
                               templates)
                       '(("draft" "creative-synthesis") ("draft" "systematic-analytical")
                         ("essay" "parsed-from-draft") ("essay" "synthesis-plain")
                         ("evaluation" "novelty") ("evaluation" "scientific-rigor"))))
        (should (equal (aref templates 0)
                       '(:active t
                         :description "Brainstorm connections between the concepts and end with the strongest idea"
                         :file "data/1_raw/templates/draft/creative-synthesis.txt"
                         :generator "llm" :id "creative-synthesis"
                         :name "Creative Synthesis" :parser "essay_idea_last"
                         :stage "draft"))))
      (dolist (params (list nil [] (make-hash-table)))
        (should (equal (jsonrpc-request conn :validateWorkspace params)
                       `(:diagnostics [] :diagnosticsOmitted 0 :errors 0 :generations 10 :root ,ws
                                      :templates 6 :valid t :warnings 0)))
        (should (equal (jsonrpc-request conn :listJobs params) '(:jobs [])))
        (should (equal (length (plist-get (jsonrpc-request conn :listTemplates params)
                                          :templates))
                       6)))
      (should (equal (plist-get (srt-error-of conn :listJobs '(:state "sleeping")) :code)
                     -32602)))))

(ert-deftest stagerunner-conformance/notifications-get-no-response ()
  "Notifications, known, unknown or cancelling nothing, are never answered."
  (let ((ws (srt-workspace)))
    (srt-with-connection (conn ws)
      (srt-initialize conn ws)
      (let ((events (jsonrpc-events-buffer conn))
            (start nil))
        (with-current-buffer events (setq start (point-max)))
        (jsonrpc-notify conn :initialized nil)
        (jsonrpc-notify conn '$/cancelRequest '(:id 999))
        (jsonrpc-notify conn '$/cancelRequest nil)
        (jsonrpc-notify conn :no/such/notification nil)
        (jsonrpc-notify conn :exit/not '(:really t))
        (should (equal (jsonrpc-request conn :ping '(:echo 1)) '(:echo 1)))
        (let ((ping-id (car (car (oref conn requests)))))
          (with-current-buffer events
            (let ((seen nil))
              (goto-char start)
              (while (re-search-forward "^\\[server-\\([a-z]+\\)\\]\\(?: (id:\\([^)]+\\))\\)?" nil t)
                (push (list (match-string 1) (match-string 2)) seen))
              (should (equal seen (list (list "reply" (format "%s" ping-id))))))))))))

(ert-deftest stagerunner-conformance/run-stage ()
  "RunStage generates a draft, then reuses it; a bad stage is -32602."
  (let ((ws (srt-workspace)))
    (srt-with-connection (conn ws)
      (srt-initialize conn ws)
      (let ((first (jsonrpc-request conn :runStage
                                    '(:stage "draft" :genId "d-creative" :runId "conf-1"))))
        (should (equal (plist-get first :status) "success"))
        (should (eq (plist-get first :reused) :json-false))
        (should (equal (plist-get first :parsed)
                       (concat "A background \"daydreaming loop\": a generator samples pairs of concepts from memory and proposes\n"
                               "links between them, while a critic model scores each link and writes the best ones back, so the\n"
                               "system keeps producing and filtering candidate insights without being asked.")))
        (should (equal (plist-get first :files)
                       ["data/gens/draft/d-creative/prompt.txt"
                        "data/gens/draft/d-creative/raw.txt"
                        "data/gens/draft/d-creative/parsed.txt"
                        "data/gens/draft/d-creative/metadata.json"]))
        (let ((metadata (plist-get first :metadata)))
          (should (equal (plist-get metadata :run_id) "conf-1"))
          (should (equal (plist-get metadata :provider) "embedded"))
          (should (equal (plist-get metadata :usage)
                         '(:completion_tokens 103 :prompt_tokens 129 :total_tokens 232))))
        (should (file-exists-p (expand-file-name "data/gens/draft/d-creative/parsed.txt" ws)))
        (let ((again (jsonrpc-request conn :runStage '(:stage "draft" :genId "d-creative"))))
          (should (eq (plist-get again :reused) t))
          (should (equal (stagerunner--get again :metadata :run_id) "conf-1"))))
      (let ((err (srt-error-of conn :runStage '(:stage "poem" :genId "d-creative"))))
        (should (equal (plist-get err :code) -32602))
        (should (equal (plist-get err :data)
                       '(:field "params.stage"
                                :problem "must be one of draft, essay, evaluation, not 'poem'")))))))

(defun srt-job-events (note)
  "The events a statusChanged NOTE stands for, in order."
  (if (vectorp (plist-get note :events))
      (append (plist-get note :events) nil)
    (list (plist-get note :event))))

(ert-deftest stagerunner-conformance/pipeline-notifications ()
  "SubscribeStatus, then runPipeline: statusChanged arrives until the job is done."
  (let* ((ws (srt-workspace "research-task"))
         (notes nil)
         (others nil))
    (srt-with-connection (conn ws
                               :notification-dispatcher
                               (lambda (_conn method params)
                                 (if (eq method 'statusChanged)
                                     (setq notes (append notes (list params)))
                                   (push method others))))
      (srt-initialize conn ws)
      (let* ((subscription (jsonrpc-request conn :subscribeStatus '(:delivery "snapshot")))
             (sub (plist-get subscription :subscriptionId))
             (job (plist-get (jsonrpc-request conn :runPipeline
                                              '(:pipeline "pipelines/research.pipeline.yaml"
                                                          :input (:topic "Kelp")))
                             :jobId)))
        (should (stringp sub))
        (should (string-match-p "\\`[0-9]\\{8\\}T[0-9]\\{6\\}Z-[0-9a-f]\\{4\\}\\'" job))
        (srt-wait (lambda ()
                    (equal (stagerunner--get (car (last notes)) :snapshot :state) "done"))
                  "the job to be done" 60)
        (should (null others))
        (dolist (note notes)
          (should (equal (plist-get note :subscriptionId) sub))
          (should (equal (plist-get note :jobId) job))
          (should (stagerunner--object-p (plist-get note :snapshot)))
          (should (equal (stagerunner--get note :snapshot :rev) (plist-get note :rev))))
        ;; Every change adds one to rev: each notification is its
        ;; predecessor's rev plus the changes it stands for.
        (cl-loop for (a b) on notes while b
                 do (should (equal (plist-get b :rev)
                                   (+ (plist-get a :rev) (plist-get b :coalesced)))))
        (let ((events (mapcan #'srt-job-events notes)))
          (should (equal (cl-loop for e in events
                                  when (equal (plist-get e :type) "job")
                                  collect (plist-get e :state))
                         '("pending" "running" "done")))
          (should (equal (cl-loop for e in events
                                  when (equal (plist-get e :type) "task")
                                  collect (list (plist-get e :task) (plist-get e :state)))
                         '(("summary" "running") ("summary" "refining") ("summary" "done")
                           ("review" "running") ("review" "done")))))
        (let ((doc (plist-get (car (last notes)) :snapshot)))
          (should (equal (plist-get doc :id) job))
          (should (equal (plist-get doc :name) "research"))
          (should (equal (plist-get doc :taskOrder) ["summary" "review"]))
          (should (equal (stagerunner--get doc :progress :tasksDone) 2))
          (should (equal (stagerunner--get doc :progress :percent) 100))
          (should (equal (stagerunner--get doc :tasks :summary :state) "done"))
          (should (equal (stagerunner--get doc :tasks :summary :refinementAttempts) 1))
          (should (equal (stagerunner--get doc :tasks :review :state) "done"))
          (should (null (plist-get doc :current)))
          (let ((status (jsonrpc-request conn :getStatus (list :jobId job))))
            (should (equal (stagerunner--get status :status :rev) (plist-get doc :rev)))))
        (should (file-exists-p (expand-file-name
                                (format "jobs/%s/tasks/summary/summary.json" job) ws)))
        (should (equal (jsonrpc-request conn :unsubscribeStatus (list :subscriptionId sub))
                       nil))
        (should (equal (plist-get (srt-error-of conn :unsubscribeStatus
                                                (list :subscriptionId sub))
                                  :code)
                       -32602))))))

(defun srt-slow-task (ws)
  "Write a task to WS whose one stage sleeps 30 seconds; return its path."
  (srt-write (expand-file-name "tasks/slow.task.yaml" ws)
             "stages: { ingestion: { command: [sleep, \"30\"] } }")
  "tasks/slow.task.yaml")

(ert-deftest stagerunner-conformance/cancel-run-task ()
  "A long runTask sent with jsonrpc-async-request, then $/cancelRequest: -32800."
  (let* ((ws (srt-workspace "research-task"))
         (outcome nil))
    (srt-with-connection (conn ws)
      (srt-initialize conn ws)
      (jsonrpc-async-request conn :runTask
                             (list :task (srt-slow-task ws) :runId "slow-1")
                             :success-fn (lambda (result) (setq outcome (list :result result)))
                             :error-fn (lambda (err) (setq outcome (list :error err)))
                             :timeout 60)
      (let ((id (car (car (oref conn requests))))
            (commands (expand-file-name "data/tasks/slow/slow-1/.commands" ws)))
        (should (eq (cdr (car (oref conn requests))) :runTask))
        (should (integerp id))
        ;; The command has started once its token is on disk.
        (srt-wait (lambda ()
                    (and (file-directory-p commands)
                         (directory-files commands nil "\\`[^.]")))
                  "the slow stage to start")
        (should (null outcome))
        (let ((start (float-time)))
          (jsonrpc-notify conn '$/cancelRequest (list :id id))
          (srt-wait (lambda () outcome) "the answer to the cancelled request" 20)
          (should (< (- (float-time) start) 10)))
        (should (eq (car outcome) :error))
        (should (equal (plist-get (cadr outcome) :code) -32800))
        ;; Cancelling again, or an id never sent, is ignored.
        (jsonrpc-notify conn '$/cancelRequest (list :id id))
        (should (equal (jsonrpc-request conn :ping '(:echo "after")) '(:echo "after")))))))

(defun srt-graded-task (ws)
  "Write the task of protocol section 8.8 to WS; return its path."
  (srt-write (expand-file-name "tasks/graded.task.yaml" ws)
             "name: graded"
             "stages:"
             "  ingestion: { template: { text: \"A draft about {{ input.topic }}.\" } }"
             "  validateQuality: { client: quality }")
  "tasks/graded.task.yaml")

(ert-deftest stagerunner-conformance/execute-stage ()
  "The server's executeStage requests are answered by the :request-dispatcher."
  (let* ((ws (srt-workspace "research-task"))
         (calls nil)
         (answer nil))
    (srt-with-connection (conn ws
                               :request-dispatcher
                               (lambda (_conn method params)
                                 (push (list method params) calls)
                                 (if (functionp answer) (funcall answer) answer)))
      (srt-initialize conn ws :capabilities '(:stageHandlers ["quality"]))
      (let ((task (srt-graded-task ws)))
        (setq answer '(:output (:grade "A" :notes "clear and short")
                               :flags (:validationFailed :json-false)))
        (let ((result (jsonrpc-request conn :runTask
                                       (list :task task :input '(:topic "kelp")
                                             :runId "graded-1"))))
          (should (eq (plist-get result :ok) t))
          (should (equal (stagerunner--get result :context :data :validateQuality)
                         '(:grade "A" :notes "clear and short")))
          (should (equal (stagerunner--get result :context :flags)
                         '(:validationFailed :json-false)))
          (should (equal (length calls) 1))
          (pcase-let ((`(,method ,params) (car calls)))
            (should (eq method 'executeStage))
            (should (equal (plist-get params :handler) "quality"))
            (should (equal (plist-get params :stage) "validateQuality"))
            (should (equal (stagerunner--get params :context :data :ingestion)
                           "A draft about kelp."))
            (should (equal (stagerunner--get params :context :data :seed) '(:topic "kelp")))
            (should (equal (stagerunner--get params :context :meta :runId) "graded-1"))
            (should (equal (stagerunner--get params :context :output) "A draft about kelp.")))
          ;; The server's request ids are integers.
          (should (integerp (car (oref conn replies)))))
        ;; No output and null flags: output null, flags {}.
        (setq calls nil answer '(:flags nil))
        (let ((result (jsonrpc-request conn :runTask
                                       (list :task task :input '(:topic "kelp")
                                             :runId "graded-2"))))
          (should (eq (plist-get result :ok) t))
          (should (plist-member (stagerunner--get result :context :data) :validateQuality))
          (should (null (stagerunner--get result :context :data :validateQuality)))
          (should (null (stagerunner--get result :context :flags))))
        ;; Flags as an empty array are {} too.
        (setq calls nil answer '(:output "fine" :flags []))
        (let ((result (jsonrpc-request conn :runTask
                                       (list :task task :input '(:topic "kelp")
                                             :runId "graded-3"))))
          (should (eq (plist-get result :ok) t))
          (should (equal (stagerunner--get result :context :data :validateQuality) "fine")))
        ;; An error answer fails the stage with ClientStageError.
        (setq calls nil
              answer (lambda () (jsonrpc-error :code -32803 :message "no grade today")))
        (let ((result (jsonrpc-request
                       conn :runTask
                       '(:task (:name "ungraded"
                                      :stages (:preProcessing (:client "quality")))
                               :runId "ungraded-1"))))
          (should (eq (plist-get result :ok) :json-false))
          (should (equal (plist-get result :failedStage) "preProcessing"))
          (should (equal (stagerunner--get result :error :name) "ClientStageError"))
          (should (equal (stagerunner--get result :error :message)
                         "the client's handler 'quality' answered executeStage with error -32803: no grade today"))
          (should (equal (length calls) 1)))))))

(ert-deftest stagerunner-conformance/stage-handlers-in-initialization-options ()
  "Stage handlers declared in initializationOptions; undeclared ones get no request."
  (let* ((ws (srt-workspace "research-task"))
         (task (srt-graded-task ws))
         (calls 0))
    (srt-with-connection (conn ws :request-dispatcher
                               (lambda (_conn _method _params)
                                 (cl-incf calls)
                                 '(:output "B" :flags nil)))
      (jsonrpc-request conn :initialize
                       `(:protocolVersion "1.0"
                                          :initializationOptions
                                          (:workspaceRoot ,ws :stageHandlers ["quality"])))
      (let ((result (jsonrpc-request conn :runTask (list :task task :input '(:topic "kelp")))))
        (should (eq (plist-get result :ok) t))
        (should (equal (stagerunner--get result :context :data :validateQuality) "B"))
        (should (equal calls 1))))
    (setq calls 0)
    (srt-with-connection (conn ws :request-dispatcher
                               (lambda (_conn _method _params) (cl-incf calls) nil))
      (srt-initialize conn ws)
      (let ((result (jsonrpc-request
                     conn :runTask '(:task (:stages (:preProcessing (:client "quality")))))))
        (should (eq (plist-get result :ok) :json-false))
        (should (equal (stagerunner--get result :error :name) "ClientStageError"))
        (should (equal calls 0))))))

(ert-deftest stagerunner-conformance/shutdown-and-exit ()
  "Shutdown is answered after the requests before it; exit then ends with status 0."
  (let ((ws (srt-workspace))
        (order nil))
    (srt-with-connection (conn ws)
      (srt-initialize conn ws)
      (let ((process (oref conn server-process)))
        (jsonrpc-async-request conn :runStage
                               '(:stage "evaluation" :genId "v-creative-llm-novelty")
                               :success-fn (lambda (result)
                                             (push (list 'runStage (plist-get result :score))
                                                   order))
                               :error-fn (lambda (err) (push (list 'error err) order))
                               :timeout 60)
        (should (equal (jsonrpc-request conn :shutdown nil) nil))
        (push (list 'shutdown) order)
        (should (equal (reverse order) '((runStage 8.5) (shutdown))))
        (let ((late (srt-error-of conn :ping nil)))
          (should (equal (plist-get late :code) -32600)))
        (jsonrpc-notify conn :exit nil)
        (srt-wait (lambda () (not (process-live-p process))) "the server to exit" 10)
        (should (eq (process-status process) 'exit))
        (should (equal (process-exit-status process) 0))
        (jsonrpc-shutdown conn)
        (should (equal (process-exit-status process) 0))
        (should-not (jsonrpc-running-p conn))))))

(ert-deftest stagerunner-conformance/exit-without-shutdown ()
  "Exit without shutdown cancels what runs and ends with status 1."
  (let* ((ws (srt-workspace "research-task"))
         (outcome nil))
    (srt-with-connection (conn ws)
      (srt-initialize conn ws)
      (let ((process (oref conn server-process)))
        (jsonrpc-async-request conn :runTask (list :task (srt-slow-task ws))
                               :success-fn (lambda (r) (setq outcome (list :result r)))
                               :error-fn (lambda (e) (setq outcome (list :error e)))
                               :timeout 60)
        (jsonrpc-notify conn :exit nil)
        (srt-wait (lambda () (not (process-live-p process))) "the server to exit" 15)
        (should (equal (process-exit-status process) 1))
        (srt-wait (lambda () outcome) "the pending request to end" 5)
        (should (equal (plist-get (cadr outcome) :code) -32800))))))

(provide 'stagerunner-conformance-test)
;;; stagerunner-conformance-test.el ends here
