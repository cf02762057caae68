;;; stagerunner-package-test.el --- The commands of stagerunner.el -*- lexical-binding: t; -*-

;;; Commentary:

;; Each command of the package against the real server, in temporary
;; copies of examples/daydream and examples/research-task.

;;; Code:

(require 'stagerunner-test-helpers)

(defconst srt-prompt
  '("You are exploring how ideas combine."
    ""
    "Concepts:"
    "1. Default mode network: the brain's activity at rest, linked to mind-wandering and idea recombination"
    "2. Generator-verifier gap: checking a solution is easier than producing one"
    "3. Combinatorial search: exploring the space of combinations of existing pieces"
    ""
    "Brainstorm 3 ways these concepts could combine into a mechanism"
    "that generates new insights without supervision. Refine the best one in stages, and wrap each"
    "stage in <essay-idea stage=\"N\"> … </essay-idea>.")
  "The prompt of d-creative.")

(defun srt-visit (ws file)
  "Visit FILE of the workspace WS and make its buffer current."
  (set-buffer (find-file-noselect (expand-file-name file ws))))

;;;; Workspaces

(ert-deftest stagerunner-package/template-paths-and-csv ()
  "Template paths give root, stage and id; CSV fields are split as CSV is."
  (should (equal (stagerunner-template-of "/srv/ws/data/1_raw/templates/essay/synthesis-plain.txt")
                 '(:root "/srv/ws" :stage "essay" :id "synthesis-plain"
                         :file "data/1_raw/templates/essay/synthesis-plain.txt")))
  (should (null (stagerunner-template-of "/srv/ws/data/1_raw/essay_templates.csv")))
  (should (equal (stagerunner-csv-fields "a,\"b, c\",\"say \"\"hi\"\"\",,z\r")
                 '("a" "b, c" "say \"hi\"" "" "z"))))

(ert-deftest stagerunner-package/workspace-root ()
  "The root is the nearest directory with a marker, else none."
  (srt-with-package
    (let ((ws (srt-workspace)))
      (should (equal (stagerunner-workspace-root (concat ws "/data/cohorts/demo/")) ws))
      (should (equal (stagerunner-workspace-root (concat ws "/data/cohorts/demo/membership.csv")) ws))
      (should (equal (stagerunner-workspace-root (concat ws "/responses/essay.txt")) ws))
      (delete-file (expand-file-name "stagerunner.yaml" ws))
      (should (equal (stagerunner-workspace-root (concat ws "/data/cohorts/demo/")) ws))
      (let ((stagerunner-workspace-markers '("stagerunner.yaml")))
        (should (null (stagerunner-workspace-root (concat ws "/data/cohorts/demo/"))))
        (with-temp-buffer
          (setq default-directory (concat ws "/data/"))
          (should-error (stagerunner--root) :type 'user-error)))
      (let ((stagerunner-workspace "/srv/fixed/"))
        (should (equal (stagerunner-workspace-root (concat ws "/data/")) "/srv/fixed"))))))

(ert-deftest stagerunner-package/targets ()
  "The generation a buffer means: the template's first usable row, a row at point."
  (srt-with-package
    (let ((ws (srt-workspace)))
      (srt-visit ws "data/1_raw/templates/draft/creative-synthesis.txt")
      (let ((target (stagerunner-target)))
        (should (equal (plist-get target :params) '(:stage "draft" :genId "d-creative")))
        (should (equal (plist-get target :root) ws))
        (should (equal (plist-get target :label) "draft/d-creative")))
      (srt-visit ws "data/1_raw/templates/essay/synthesis-plain.txt")
      (should (equal (plist-get (plist-get (stagerunner-target) :params) :genId) "e-creative-llm"))
      (srt-write (expand-file-name "data/gens/draft/d-analytic/metadata.json" ws) "{}")
      (should (equal (plist-get (plist-get (stagerunner-target) :params) :genId) "e-analytic-llm"))
      (should (equal (plist-get (stagerunner-target "v-creative-llm-rigor") :params)
                     '(:stage "evaluation" :genId "v-creative-llm-rigor")))
      (should (equal (plist-get (stagerunner-target "nope") :params)
                     '(:stage "essay" :templateId "synthesis-plain" :genId "nope")))
      (srt-write (expand-file-name "data/1_raw/templates/draft/lonely.txt" ws) "Hi")
      (let ((stagerunner-model "sonnet-4"))
        (srt-visit ws "data/1_raw/templates/draft/lonely.txt")
        (should (equal (plist-get (stagerunner-target) :params)
                       '(:stage "draft" :templateId "lonely" :model "sonnet-4"))))
      (srt-visit ws "data/cohorts/demo/membership.csv")
      (goto-char (point-min))
      (forward-line 2)
      (should (equal (plist-get (stagerunner-target) :params)
                     '(:stage "draft" :genId "d-analytic")))
      (goto-char (point-min))
      (should (equal (cadr (should-error (stagerunner-target) :type 'user-error))
                     "Put point on a row of the membership file (not the header)"))
      (srt-visit ws "stagerunner.yaml")
      (should-error (stagerunner-target) :type 'user-error)
      (should (equal (plist-get (plist-get (stagerunner-target "e-creative-copy") :params)
                                :stage)
                     "essay"))
      (should-error (stagerunner-target "nope") :type 'user-error))))

;;;; Render

(ert-deftest stagerunner-package/render-prompt ()
  "The prompt of the template being edited, in a buffer; nothing is written."
  (srt-with-package
    (let ((ws (srt-workspace)))
      (srt-visit ws "data/1_raw/templates/draft/creative-synthesis.txt")
      (let* ((editing (current-buffer))
             (outcome (srt-await #'stagerunner-render-prompt nil))
             (lines (srt-lines "*stagerunner render: draft/d-creative*")))
        (should (null (cadr outcome)))
        (should (equal (seq-take lines 3)
                       '("# draft/d-creative · template creative-synthesis"
                         "# data/1_raw/templates/draft/creative-synthesis.txt · variables: concepts, idea_count"
                         "")))
        (should (equal (nthcdr 3 lines) srt-prompt))
        (should (eq (current-buffer) editing))
        (with-current-buffer "*stagerunner render: draft/d-creative*"
          (should (eq major-mode 'stagerunner-result-mode))
          (should buffer-read-only)
          (should (equal (plist-get stagerunner--result :templateId) "creative-synthesis"))
          (should (get-buffer-window (current-buffer))))
        (should-not (file-exists-p (expand-file-name "data/gens/draft/d-creative" ws)))
        (should (equal (srt-messages-matching "rendered")
                       '("StageRunner: rendered draft/d-creative")))))))

(ert-deftest stagerunner-package/render-gen-id-and-unsaved-edits ()
  "A gen_id picks the row; a modified template is saved before rendering."
  (srt-with-package
    (let ((ws (srt-workspace)))
      (srt-visit ws "data/1_raw/templates/draft/systematic-analytical.txt")
      (srt-await #'stagerunner-render-prompt "d-analytic")
      (let ((lines (srt-lines "*stagerunner render: draft/d-analytic*")))
        (should (equal (nth 3 lines) "Analyse each pair of these 3 concepts systematically:"))
        (should (equal (nth 5 lines) "- DEFAULT MODE NETWORK;")))
      (srt-visit ws "data/1_raw/templates/draft/creative-synthesis.txt")
      (goto-char (point-min))
      (delete-region (point) (line-end-position))
      (insert "You are exploring, {{ idea_count }} times over.")
      (let ((result (car (srt-await #'stagerunner-render-prompt nil))))
        (should (equal (car (split-string (plist-get result :prompt) "\n"))
                       "You are exploring, 3 times over."))
        (should-not (buffer-modified-p))))))

(ert-deftest stagerunner-package/render-template-error ()
  "A template error is reported with the file, line and fix."
  (srt-with-package
    (let* ((ws (srt-workspace))
           (file "data/1_raw/templates/draft/creative-synthesis.txt"))
      (srt-visit ws file)
      (goto-char (point-min))
      (forward-line 2)
      (insert "Mood: {{ mood }}\n")
      (save-buffer)
      (pcase-let ((`(,result ,err) (srt-await #'stagerunner-render-prompt nil)))
        (should (null result))
        (should (equal (plist-get err :code) -32011))
        (let ((message (format "Template: undefined variable 'mood' in template '%s' at line 3"
                               file)))
          (should (equal (plist-get err :message) message))
          (should (equal (srt-messages-matching "failed")
                         (list (string-join
                                (list (format "StageRunner: renderPrompt failed: %s [-32011 Template]"
                                              message)
                                      (format "  where: %s:3" file)
                                      "  fix: fix the template at data.file, line data.line, or pass the missing values")
                                "\n")))))))))

(ert-deftest stagerunner-package/render-missing-parent ()
  "A parent not generated yet is a workspace error with its hint."
  (srt-with-package
    (let ((ws (srt-workspace)))
      (srt-visit ws "data/1_raw/templates/essay/synthesis-plain.txt")
      (let ((err (cadr (srt-await #'stagerunner-render-prompt nil))))
        (should (equal (plist-get err :code) -32010))
        (should (equal (stagerunner-error-lines "renderPrompt" err)
                       '("StageRunner: renderPrompt failed: Workspace: parent draft 'd-creative' has not been generated yet; run it first [-32010 Workspace]"
                         "  where: params.passThroughFrom"
                         "  fix: run the parent stage first, or fix the workspace (validateWorkspace lists its problems)")))))))

;;;; Run

(ert-deftest stagerunner-package/run-stage ()
  "RunStage's generation in a buffer: status, files, parsed, raw and metadata."
  (srt-with-package
    (let ((ws (srt-workspace)))
      (srt-visit ws "data/1_raw/templates/draft/creative-synthesis.txt")
      (let* ((first (car (srt-await #'stagerunner-run-stage nil nil)))
             (name "*stagerunner run: draft/d-creative*")
             (lines (srt-lines name)))
        (should (equal (seq-take lines 2)
                       '("# runStage draft/d-creative: success"
                         "# model sonnet-4 via embedded · 232 tokens")))
        (let ((files (srt-index lines "## files")))
          (should (equal (seq-subseq lines (1+ files) (+ files 5))
                         '("data/gens/draft/d-creative/prompt.txt"
                           "data/gens/draft/d-creative/raw.txt"
                           "data/gens/draft/d-creative/parsed.txt"
                           "data/gens/draft/d-creative/metadata.json"))))
        (should (equal (nth (1+ (srt-index lines "## parsed")) lines)
                       "A background \"daydreaming loop\": a generator samples pairs of concepts from memory and proposes"))
        (should (equal (nth (1+ (srt-index lines "## raw")) lines) "<essay-idea stage=\"1\">"))
        (should (srt-index lines "provider: embedded"))
        (should (srt-index lines "template_id: creative-synthesis"))
        (should (srt-index lines "files: prompt.txt, raw.txt, parsed.txt, metadata.json"))
        (should (srt-index lines "  total_tokens: 232"))
        (should-not (srt-index lines "## debug"))
        (should (file-exists-p (expand-file-name "data/gens/draft/d-creative/parsed.txt" ws)))
        (should (equal (srt-messages-matching "d-creative: success")
                       '("StageRunner: draft/d-creative: success")))
        ;; Again: reused.  Forced: a new generation.
        (let ((again (car (srt-await #'stagerunner-run-stage nil nil))))
          (should (eq (plist-get again :reused) t))
          (should (equal (stagerunner--get again :metadata :run_id)
                         (stagerunner--get first :metadata :run_id)))
          (should (equal (car (srt-lines name))
                         "# runStage draft/d-creative: success (reused)")))
        (let ((forced (car (srt-await #'stagerunner-run-stage nil t))))
          (should (eq (plist-get forced :reused) :json-false))
          (should-not (equal (stagerunner--get forced :metadata :run_id)
                             (stagerunner--get first :metadata :run_id)))
          (should (equal (car (srt-lines name)) "# runStage draft/d-creative: success"))
          (with-current-buffer name
            (should (eq stagerunner--result forced))))))))

(ert-deftest stagerunner-package/run-evaluation-and-membership-row ()
  "An evaluation runs its row, parents first; a membership row at point runs."
  (srt-with-package
    (let ((ws (srt-workspace)))
      (srt-visit ws "data/1_raw/templates/evaluation/novelty.txt")
      (let ((result (car (srt-await #'stagerunner-run-stage nil nil))))
        (should (equal (plist-get result :genId) "v-creative-llm-novelty"))
        (should (equal (plist-get result :score) 8.5))
        (should (equal (nth 1 (srt-lines "*stagerunner run: evaluation/v-creative-llm-novelty*"))
                       (format "# model gpt-5-mini via embedded · %d tokens · score 8.5"
                               (stagerunner--get result :metadata :usage :total_tokens))))
        (should (file-exists-p (expand-file-name "data/gens/essay/e-creative-llm/metadata.json" ws))))
      (srt-visit ws "data/cohorts/demo/membership.csv")
      (goto-char (point-min))
      (forward-line 4)
      (srt-await #'stagerunner-run-stage nil nil)
      (let ((lines (srt-lines "*stagerunner run: essay/e-creative-copy*")))
        (should (equal (seq-take lines 2)
                       '("# runStage essay/e-creative-copy: success" "# copy of d-creative")))
        (should (equal (nth (1+ (srt-index lines "## raw")) lines) "(none: no model call)"))))))

(ert-deftest stagerunner-package/run-parse-failure-and-model-error ()
  "A parse failure is a result shown with its reason; a model error is reported."
  (srt-with-package
    (let ((ws (srt-workspace)))
      (srt-write (expand-file-name "data/1_raw/draft_templates.csv" ws)
                 "template_id,template_name,description,parser,generator,active"
                 "creative-synthesis,Creative Synthesis,Brainstorm,essay_idea_last,llm,true"
                 "systematic-analytical,Systematic Analytical,Pairwise,json,llm,true")
      (srt-visit ws "data/1_raw/templates/draft/systematic-analytical.txt")
      (let* ((result (car (srt-await #'stagerunner-run-stage nil nil)))
             (lines (srt-lines "*stagerunner run: draft/d-analytic*")))
        (should (equal (plist-get result :status) "json_parse_error"))
        (should (equal (car lines) "# runStage draft/d-analytic: json_parse_error"))
        (should (equal (nth (1+ (srt-index lines "## parsed")) lines) "(none: parsing failed)"))
        (should (srt-index lines "## debug"))
        (should (equal (srt-messages-matching "ended with status")
                       (list (concat "StageRunner: draft/d-analytic ended with status json_parse_error: "
                                     (stagerunner--get result :debug :llm_error))))))
      (let ((stagerunner-model "acme:gpt-5"))
        (srt-write (expand-file-name "data/1_raw/templates/draft/lonely.txt" ws) "Hi")
        (srt-append (expand-file-name "data/1_raw/draft_templates.csv" ws)
                    "lonely,Lonely,No row uses it,,llm,true")
        (srt-visit ws "data/1_raw/templates/draft/lonely.txt")
        (let ((err (cadr (srt-await #'stagerunner-run-stage nil nil))))
          (should (equal (plist-get err :code) -32012))
          (let ((lines (split-string (car (srt-messages-matching "runStage failed")) "\n")))
            (should (string-prefix-p "StageRunner: runStage failed: Model: provider 'acme' of model 'acme:gpt-5' is not configured"
                                     (car lines)))
            (should (member "  where: params.model" lines))
            (should (member "  fix: check the model id and the provider's configuration"
                            lines))))))))

;;;; Validate and Flymake

(defun srt-plant-problems (ws)
  "Plant in WS a catalog row without its file, an unlisted template, an orphan."
  (srt-append (expand-file-name "data/1_raw/draft_templates.csv" ws)
              "ghost-template,Ghost,No file for this one,,llm,true")
  (srt-write (expand-file-name "data/1_raw/templates/draft/stray.txt" ws) "Nobody lists me.")
  (srt-append (expand-file-name "data/cohorts/demo/membership.csv" ws)
              "essay,e-orphan,demo,d-missing,combo-loop,synthesis-plain,sonnet-4"))

(defun srt-flymake-check ()
  "Run Flymake in the current buffer and wait for stagerunner-flymake's report."
  (let ((buffer (current-buffer)))
    (flymake-start)
    (srt-wait (lambda ()
                (with-current-buffer buffer
                  (memq 'stagerunner-flymake (flymake-reporting-backends))))
              "the Flymake check")))

(defun srt-diagnostics ()
  "The Flymake diagnostics of the current buffer: (LINE COLUMN TYPE TEXT)."
  (mapcar (lambda (d)
            (save-excursion
              (goto-char (flymake-diagnostic-beg d))
              (list (line-number-at-pos) (1+ (current-column))
                    (flymake-diagnostic-type d) (flymake-diagnostic-text d))))
          (sort (flymake-diagnostics) (lambda (a b) (< (flymake-diagnostic-beg a)
                                                       (flymake-diagnostic-beg b))))))

(ert-deftest stagerunner-package/validate-valid-workspace ()
  "A valid workspace: the summary, no problems, no Flymake diagnostics."
  (srt-with-package
    (let ((ws (srt-workspace)))
      (srt-visit ws "stagerunner.yaml")
      (let ((result (car (srt-await #'stagerunner-validate))))
        (should (eq (plist-get result :valid) t)))
      (should (equal (srt-messages-matching "workspace valid")
                     '("StageRunner: workspace valid: 0 errors, 0 warnings (6 templates, 10 generations)")))
      (should (equal (srt-lines "*stagerunner problems*")
                     (list (concat "validateWorkspace " ws)
                           "workspace valid: 0 errors, 0 warnings (6 templates, 10 generations)")))
      (stagerunner-mode 1)
      (should flymake-mode)
      (should (memq #'stagerunner-flymake flymake-diagnostic-functions))
      (should (null flymake-no-changes-timeout))
      (srt-flymake-check)
      (should (null (flymake-diagnostics)))
      (should (memq 'stagerunner-flymake (flymake-reporting-backends)))
      (stagerunner-mode -1)
      (should-not flymake-mode)
      (should-not (memq #'stagerunner-flymake flymake-diagnostic-functions)))))

(ert-deftest stagerunner-package/validate-problems-through-flymake ()
  "Planted problems: file, line, column, severity and message, here and foreign."
  (srt-with-package
    (let ((ws (srt-workspace)))
      (srt-plant-problems ws)
      (srt-visit ws "data/1_raw/draft_templates.csv")
      (stagerunner-mode 1)
      (srt-flymake-check)
      (should (equal (srt-diagnostics)
                     '((4 1 :error "template 'ghost-template' has no text at data/1_raw/templates/draft/ghost-template.txt [catalog.missing-template-file]"))))
      (let ((d (car (flymake-diagnostics))))
        (should (equal (plist-get (flymake-diagnostic-data d) :code)
                       "catalog.missing-template-file"))
        (should (equal (flymake-diagnostic-backend d) 'stagerunner-flymake)))
      ;; The other files' problems show when they are visited.
      (let ((membership (srt-visit ws "data/cohorts/demo/membership.csv")))
        (flymake-mode 1)
        (with-current-buffer membership
          (should (equal (srt-diagnostics)
                         '((12 1 :error "parent 'd-missing' of e-orphan is not in the membership [membership.unknown-parent]"))))))
      (srt-visit ws "data/1_raw/templates/draft/stray.txt")
      (stagerunner-mode 1)
      (srt-flymake-check)
      (should (equal (srt-diagnostics)
                     '((1 1 :warning "template file is not listed in data/1_raw/draft_templates.csv, so it cannot be used [catalog.unlisted-template]"))))
      ;; The command: the summary and every problem, where next-error goes.
      (let ((result (car (srt-await #'stagerunner-validate))))
        (should (eq (plist-get result :valid) :json-false)))
      (should (equal (srt-messages-matching "workspace invalid")
                     '("StageRunner: workspace invalid: 2 errors, 1 warning (7 templates, 11 generations)")))
      (should (equal (cdr (srt-lines "*stagerunner problems*"))
                     '("data/1_raw/draft_templates.csv:4:1: error: template 'ghost-template' has no text at data/1_raw/templates/draft/ghost-template.txt [catalog.missing-template-file]"
                       "data/1_raw/templates/draft/stray.txt:1: warning: template file is not listed in data/1_raw/draft_templates.csv, so it cannot be used [catalog.unlisted-template]"
                       "data/cohorts/demo/membership.csv:12: error: parent 'd-missing' of e-orphan is not in the membership [membership.unknown-parent]"
                       "workspace invalid: 2 errors, 1 warning (7 templates, 11 generations)")))
      (with-current-buffer "*stagerunner problems*"
        (should (eq major-mode 'compilation-mode))
        (goto-char (point-min))
        (let ((next-error-last-buffer (current-buffer)))
          (compilation-next-error 1)
          (compile-goto-error)
          (should (equal (buffer-file-name) (expand-file-name "data/1_raw/draft_templates.csv" ws)))
          (should (equal (line-number-at-pos) 4)))))))

(ert-deftest stagerunner-package/validate-after-a-fix ()
  "Checking again after a fix clears the diagnostic."
  (srt-with-package
    (let ((ws (srt-workspace)))
      (srt-plant-problems ws)
      (srt-visit ws "data/1_raw/draft_templates.csv")
      (stagerunner-mode 1)
      (srt-flymake-check)
      (should (equal (length (flymake-diagnostics)) 1))
      (goto-char (point-max))
      (forward-line -1)
      (delete-region (point) (point-max))
      (save-buffer)
      (let ((result (car (srt-await #'stagerunner-validate))))
        (should (equal (plist-get result :errors) 1)))
      (srt-wait (lambda () (memq 'stagerunner-flymake (flymake-reporting-backends)))
                "the check after validate")
      (should (null (flymake-diagnostics))))))

;;;; Pipelines and jobs

(defun srt-job-view ()
  "The view of the one job followed."
  (let ((views nil))
    (maphash (lambda (_id view) (push view views)) stagerunner--job-views)
    (should (equal (length views) 1))
    (car views)))

(defun srt-slow-pipeline (ws)
  "Write a pipeline to WS whose one task sleeps 30 seconds; return its path."
  (srt-write (expand-file-name "tasks/slow.task.yaml" ws)
             "stages: { ingestion: { command: [sleep, \"30\"] } }")
  (srt-write (expand-file-name "pipelines/slow.pipeline.yaml" ws)
             "name: slow" "tasks:" "  - task: ../tasks/slow.task.yaml")
  "pipelines/slow.pipeline.yaml")

(ert-deftest stagerunner-package/job-lines-of-example-documents ()
  "The lines of the protocol's example documents."
  (let ((read (lambda (name)
                (json-parse-string
                 (srt-read (expand-file-name (format "protocol/examples/status/%s.json" name)
                                             srt-repo))
                 :object-type 'plist :null-object nil :false-object :json-false))))
    (let ((lines (stagerunner-job-lines (funcall read "cancelled"))))
      (should (equal lines
                     '("slow · 20261122T020105Z-734e"
                       "state: cancelled · 9% · 0/1 tasks · 0 tokens · $0.0000"
                       ""
                       "slow  cancelled  stage ingestion  cycle 0      0 tokens  $0.0000  attempts 1"
                       ""
                       "cancelled in slow/ingestion · artifacts in jobs/20261122T020105Z-734e/"))))
    (let* ((doc (funcall read "failed"))
           (lines (stagerunner-job-lines doc)))
      (should (string-prefix-p "failed in flaky/ingestion: command " (car (last lines))))
      (should (string-suffix-p (format " · artifacts in jobs/%s/" (plist-get doc :id))
                               (car (last lines)))))
    (let ((lines (stagerunner-job-lines (funcall read "pending"))))
      (should-not (string-search "artifacts" (car (last lines)))))))

(ert-deftest stagerunner-package/run-pipeline-to-done ()
  "The research pipeline runs, and its buffer follows it to done."
  (srt-with-package
    (let ((ws (srt-workspace "research-task")))
      (srt-visit ws "stagerunner.yaml")
      (pcase-let ((`(,doc ,err) (srt-await #'stagerunner-run-pipeline
                                           "pipelines/research.pipeline.yaml"
                                           "{\"topic\": \"Kelp\"}")))
        (should (null err))
        (should (equal (plist-get doc :state) "done"))
        (let* ((view (srt-job-view))
               (id (stagerunner-job-view-job-id view))
               (task (lambda (name) (stagerunner--get doc :tasks (stagerunner--key name)))))
          (should (equal (plist-get doc :id) id))
          (should (equal (srt-lines (format "*stagerunner job: %s*" id))
                         (list (format "research · %s" id)
                               (format "state: done · 100%% · 2/2 tasks · %d tokens · $%.4f"
                                       (stagerunner--get doc :tokenUsage :totalTokens)
                                       (plist-get doc :cost))
                               ""
                               (format "summary  done       stage -  cycle 1  %5d tokens  $%.4f  attempts 1"
                                       (stagerunner--get (funcall task "summary") :tokenUsage :totalTokens)
                                       (plist-get (funcall task "summary") :cost))
                               (format "review   done       stage -  cycle 0  %5d tokens  $%.4f  attempts 1"
                                       (stagerunner--get (funcall task "review") :tokenUsage :totalTokens)
                                       (plist-get (funcall task "review") :cost))
                               ""
                               (format "done · artifacts in jobs/%s/" id))))
          (should (> (stagerunner--get (funcall task "summary") :tokenUsage :totalTokens) 0))
          (should (eq (window-buffer (selected-window)) (stagerunner-job-view-buffer view)))
          (let ((revs (stagerunner-job-view-revs view)))
            (should (> (length revs) 1))
            (should (equal revs (sort (cl-remove-duplicates (copy-sequence revs)) #'<)))
            (should (equal (car (last revs)) (plist-get doc :rev))))
          (should (equal (gethash "topic" (stagerunner--parse-json
                                           (srt-read (expand-file-name
                                                      (format "jobs/%s/input.json" id) ws))))
                         "Kelp"))
          (should (file-exists-p (expand-file-name (format "jobs/%s/tasks/summary/summary.json" id)
                                                   ws)))
          ;; Killing the buffer ends the subscription.
          (let ((subscription (stagerunner-job-view-subscription view))
                (events (jsonrpc-events-buffer (stagerunner-job-view-connection view))))
            (should (stringp subscription))
            (kill-buffer (stagerunner-job-view-buffer view))
            (should (stagerunner-job-view-closed view))
            (should (null (gethash subscription stagerunner--subscriptions)))
            (with-current-buffer events
              (goto-char (point-min))
              (should (re-search-forward
                       (format "unsubscribeStatus\"[^\"]*:params[^\"]*(:subscriptionId %S)"
                               subscription)
                       nil t)))))))))

(ert-deftest stagerunner-package/run-pipeline-of-this-buffer-fails ()
  "The pipeline of the current buffer with input {}: it fails in ingestion."
  (srt-with-package
    (let ((ws (srt-workspace "research-task")))
      (srt-visit ws "pipelines/research.pipeline.yaml")
      (let* ((doc (car (srt-await #'stagerunner-run-pipeline buffer-file-name nil)))
             (id (plist-get doc :id)))
        (should (equal (plist-get doc :state) "failed"))
        (should (equal (srt-read (expand-file-name (format "jobs/%s/input.json" id) ws))
                       "{}\n"))
        (should (equal (srt-lines (format "*stagerunner job: %s*" id))
                       (list (format "research · %s" id)
                             "state: failed · 4% · 0/2 tasks · 0 tokens · $0.0000"
                             ""
                             "summary  failed     stage ingestion  cycle 0      0 tokens  $0.0000  attempts 1"
                             "review   pending    stage -          cycle 0      0 tokens  $0.0000  attempts 0"
                             ""
                             (format "failed in summary/ingestion: command python3 stages/ingest.py exited with status 2: the input needs a non-empty 'topic' · artifacts in jobs/%s/"
                                     id))))))))

(ert-deftest stagerunner-package/run-pipeline-errors ()
  "A pipeline that is not there is reported (-32015) and opens no job buffer."
  (srt-with-package
    (let ((ws (srt-workspace "research-task")))
      (srt-visit ws "stagerunner.yaml")
      (let ((err (cadr (srt-await #'stagerunner-run-pipeline "pipelines/missing.pipeline.yaml" nil))))
        (should (equal (plist-get err :code) -32015))
        (should (equal (stagerunner--get err :data :kind) "pipeline"))
        (should (equal (car (split-string (car (srt-messages-matching "runPipeline failed")) "\n"))
                       (format "StageRunner: runPipeline failed: %s [-32015 Task]"
                               (plist-get err :message)))))
      (should (equal (hash-table-count stagerunner--job-views) 0))
      (should-error (stagerunner-run-pipeline "pipelines/research.pipeline.yaml" "{topic")
                    :type 'json-parse-error)
      (let ((err (cadr (srt-await #'stagerunner-job-status "20200101T000000Z-0000"))))
        (should (equal (plist-get err :code) -32016))
        (should (equal (stagerunner--get err :data :reason) "not_found"))))))

(ert-deftest stagerunner-package/cancel-job ()
  "Cancelling the job of its buffer; cancelling again is -32016 invalid_state."
  (srt-with-package
    (let ((ws (srt-workspace "research-task")))
      (srt-visit ws "stagerunner.yaml")
      (stagerunner-run-pipeline (srt-slow-pipeline ws) nil)
      (srt-wait (lambda ()
                  (let ((view (car (hash-table-values stagerunner--job-views))))
                    (and view (equal (stagerunner--get (stagerunner-job-view-doc view)
                                                       :tasks :slow :currentStage)
                                     "ingestion"))))
                "the slow stage to run")
      (let* ((view (srt-job-view))
             (id (stagerunner-job-view-job-id view)))
        (with-current-buffer (stagerunner-job-view-buffer view)
          (should (equal (stagerunner--current-job) id))
          (let ((doc (car (srt-await #'stagerunner-cancel-job id))))
            (should (equal (plist-get doc :state) "cancelled"))))
        (srt-wait (lambda () (equal (plist-get (stagerunner-job-view-doc view) :state)
                                    "cancelled"))
                  "the buffer to show it cancelled")
        (let ((lines (srt-lines (stagerunner-job-view-buffer view))))
          (should (equal (nth 1 lines) "state: cancelled · 9% · 0/1 tasks · 0 tokens · $0.0000"))
          (should (equal (nth 3 lines)
                         "slow  cancelled  stage ingestion  cycle 0      0 tokens  $0.0000  attempts 1"))
          (should (equal (car (last lines))
                         (format "cancelled in slow/ingestion · artifacts in jobs/%s/" id))))
        (should (equal (srt-messages-matching "cancelled$")
                       (list (format "StageRunner: job %s cancelled" id))))
        (let ((err (cadr (srt-await #'stagerunner-cancel-job id))))
          (should (equal (plist-get err :code) -32016))
          (should (equal (stagerunner--get err :data :reason) "invalid_state")))))))

(ert-deftest stagerunner-package/stop-while-a-job-runs ()
  "Stopping the server cancels the job; the buffer says so; a new server follows it."
  (srt-with-package
    (let ((ws (srt-workspace "research-task")))
      (srt-visit ws "stagerunner.yaml")
      (stagerunner-run-pipeline (srt-slow-pipeline ws) nil)
      (srt-wait (lambda ()
                  (let ((view (car (hash-table-values stagerunner--job-views))))
                    (and view (equal (stagerunner--get (stagerunner-job-view-doc view)
                                                       :tasks :slow :currentStage)
                                     "ingestion"))))
                "the slow stage to run")
      (let* ((view (srt-job-view))
             (id (stagerunner-job-view-job-id view)))
        (should (equal (stagerunner-stop) (list (cons ws 0))))
        (should (stagerunner-job-view-server-gone view))
        (should (equal (plist-get (stagerunner-job-view-doc view) :state) "cancelled"))
        (should (equal (car (last (srt-lines (stagerunner-job-view-buffer view))))
                       (format "cancelled in slow/ingestion · artifacts in jobs/%s/" id)))
        (should (null (srt-messages-matching "StageRunner: the server")))
        (let ((doc (car (srt-await #'stagerunner-job-status id))))
          (should (equal (plist-get doc :state) "cancelled")))
        (let ((again (gethash id stagerunner--job-views)))
          (should-not (eq again view))
          (srt-wait (lambda () (stagerunner-job-view-subscription again))
                    "the new subscription")
          (should (equal (car (last (srt-lines (stagerunner-job-view-buffer again))))
                         (format "cancelled in slow/ingestion · artifacts in jobs/%s/" id))))))))

(ert-deftest stagerunner-package/server-gone-while-following ()
  "A server that dies while a job runs: the buffer says no more updates come."
  (srt-with-package
    (let ((ws (srt-workspace "research-task")))
      (srt-visit ws "stagerunner.yaml")
      (stagerunner-run-pipeline (srt-slow-pipeline ws) nil)
      (srt-wait (lambda ()
                  (let ((view (car (hash-table-values stagerunner--job-views))))
                    (and view (equal (plist-get (stagerunner-job-view-doc view) :state)
                                     "running"))))
                "the job to run")
      (let* ((view (srt-job-view))
             (conn (stagerunner-job-view-connection view)))
        (signal-process (stagerunner-server-process conn) 'SIGKILL)
        (srt-wait (lambda () (stagerunner-job-view-server-gone view)) "the exit")
        (should (equal (last (srt-lines (stagerunner-job-view-buffer view)) 2)
                       (list ""
                             (format "the server stopped: no more updates (M-x stagerunner-job-status %s follows it again)"
                                     (stagerunner-job-view-job-id view)))))
        (srt-wait (lambda () (srt-messages-matching "killed by signal 9")) "the report")
        (should (string-prefix-p (format "StageRunner: the server was killed by signal 9 (workspace %s)" ws)
                                 (car (srt-messages-matching "killed by signal 9"))))))))

(ert-deftest stagerunner-package/list-jobs ()
  "The jobs in a tabulated list; RET follows one, a state filters them."
  (srt-with-package
    (let ((ws (srt-workspace "research-task")))
      (srt-visit ws "stagerunner.yaml")
      (let* ((doc (car (srt-await #'stagerunner-run-pipeline
                                  "pipelines/research.pipeline.yaml" '(:topic "Kelp"))))
             (id (plist-get doc :id)))
        (kill-buffer (format "*stagerunner job: %s*" id))
        (srt-visit ws "stagerunner.yaml")
        (let ((result (car (srt-await #'stagerunner-list-jobs nil))))
          (should (equal (length (plist-get result :jobs)) 1)))
        (with-current-buffer "*stagerunner jobs*"
          (should (eq major-mode 'stagerunner-jobs-mode))
          (should (equal (length tabulated-list-entries) 1))
          (let ((entry (car tabulated-list-entries)))
            (should (equal (car entry) id))
            (should (equal (append (cadr entry) nil)
                           (list id "research" "done" "100%" "-"
                                 (format "$%.4f" (plist-get doc :cost))
                                 (plist-get doc :lastUpdated)))))
          (goto-char (point-min))
          (should (equal (tabulated-list-get-id) id))
          (should (equal (stagerunner--current-job) id))
          (stagerunner-jobs-follow)
          (srt-wait (lambda () (let ((view (gethash id stagerunner--job-views)))
                                 (and view (stagerunner-job-view-subscription view))))
                    "the job's buffer")
          (should (equal (car (last (srt-lines (format "*stagerunner job: %s*" id))))
                         (format "done · artifacts in jobs/%s/" id))))
        (should (equal (stagerunner--job-ids ws) (list id)))
        (srt-visit ws "stagerunner.yaml")
        (srt-await #'stagerunner-list-jobs "running")
        (with-current-buffer "*stagerunner jobs*"
          (should (null tabulated-list-entries))
          (should (equal stagerunner--jobs-state "running")))))))

(ert-deftest stagerunner-package/client-stage-handlers ()
  "A task stage {client: quality} runs `stagerunner-stage-handlers' in a job."
  (srt-with-package
    (let* ((ws (srt-workspace "research-task"))
           (seen nil)
           (stagerunner-stage-handlers
            `(("quality" . ,(lambda (stage context)
                              (push (list stage (stagerunner--get context :data :ingestion)) seen)
                              '(:output (:grade "A") :flags (:validationFailed :json-false))))
              ("broken" . ,(lambda (_stage _context) (error "Out of ink"))))))
      (srt-write (expand-file-name "tasks/graded.task.yaml" ws)
                 "name: graded" "stages:"
                 "  ingestion: { template: { text: \"A draft about {{ input.topic }}.\" } }"
                 "  validateQuality: { client: quality }")
      (srt-write (expand-file-name "tasks/broken.task.yaml" ws)
                 "name: broken" "stages:" "  preProcessing: { client: broken }")
      (srt-write (expand-file-name "pipelines/graded.pipeline.yaml" ws)
                 "name: graded" "tasks:" "  - task: ../tasks/graded.task.yaml")
      (srt-write (expand-file-name "pipelines/broken.pipeline.yaml" ws)
                 "name: broken" "tasks:" "  - task: ../tasks/broken.task.yaml")
      (srt-visit ws "stagerunner.yaml")
      (let* ((doc (car (srt-await #'stagerunner-run-pipeline "pipelines/graded.pipeline.yaml"
                                  "{\"topic\": \"kelp\"}")))
             (output (json-parse-string
                      (srt-read (expand-file-name
                                 (format "jobs/%s/tasks/graded/output.json" (plist-get doc :id))
                                 ws))
                      :object-type 'plist :null-object nil :false-object :json-false)))
        (should (equal (plist-get doc :state) "done"))
        (should (equal seen '(("validateQuality" "A draft about kelp."))))
        (should (equal (stagerunner--get output :context :data :validateQuality) '(:grade "A"))))
      (let ((doc (car (srt-await #'stagerunner-run-pipeline "pipelines/broken.pipeline.yaml" nil))))
        (should (equal (plist-get doc :state) "failed"))
        (should (equal (stagerunner--get doc :error :message)
                       "the client's handler 'broken' answered executeStage with error -32803: Out of ink"))))))

;;;; Interactive use

(ert-deftest stagerunner-package/interactive-forms ()
  "The commands as keys call them: prefix arguments and what they read."
  (srt-with-package
    (let* ((ws (srt-workspace "daydream"))
           (read nil)
           (answers nil))
      (cl-letf (((symbol-function 'completing-read)
                 (lambda (prompt &rest _) (push prompt read) (pop answers)))
                ((symbol-function 'read-string)
                 (lambda (prompt &rest _) (push prompt read) (pop answers)))
                ((symbol-function 'read-file-name)
                 (lambda (prompt &rest _) (push prompt read) (pop answers))))
        (srt-visit ws "data/1_raw/templates/draft/creative-synthesis.txt")
        (call-interactively #'stagerunner-run-stage)
        (srt-wait (lambda () (get-buffer "*stagerunner run: draft/d-creative*")) "the run")
        (should (null read))
        (let ((first (with-current-buffer "*stagerunner run: draft/d-creative*"
                       stagerunner--result)))
          ;; C-u: generated again.
          (let ((current-prefix-arg '(4)))
            (call-interactively #'stagerunner-run-stage))
          (srt-wait (lambda ()
                      (not (eq first (with-current-buffer "*stagerunner run: draft/d-creative*"
                                       stagerunner--result))))
                    "the forced run")
          (should (eq (plist-get (with-current-buffer "*stagerunner run: draft/d-creative*"
                                   stagerunner--result)
                                 :reused)
                      :json-false)))
        ;; C-u on render, or a buffer that means no generation: the gen_id is read.
        (setq answers '("d-analytic"))
        (let ((current-prefix-arg '(4)))
          (call-interactively #'stagerunner-render-prompt))
        (srt-wait (lambda () (get-buffer "*stagerunner render: draft/d-analytic*")) "the render")
        (should (equal read '("Generation (gen_id): ")))
        (srt-visit ws "stagerunner.yaml")
        (setq read nil answers '("e-creative-copy"))
        (call-interactively #'stagerunner-run-stage)
        (srt-wait (lambda () (get-buffer "*stagerunner run: essay/e-creative-copy*")) "the copy")
        (should (equal read '("Generation (gen_id): "))))
      ;; Files in a workspace get the mode; others do not.
      (srt-visit ws "responses/essay.txt")
      (stagerunner-mode-maybe)
      (should stagerunner-mode)
      (with-temp-buffer
        (setq buffer-file-name (expand-file-name "elsewhere.txt" temporary-file-directory))
        (stagerunner-mode-maybe)
        (should-not stagerunner-mode)
        (setq buffer-file-name nil))))
  (srt-with-package
    (let ((ws (srt-workspace "research-task"))
          (read nil)
          (answers nil))
      (cl-letf (((symbol-function 'completing-read)
                 (lambda (prompt &rest _) (push prompt read) (pop answers)))
                ((symbol-function 'read-string)
                 (lambda (prompt &rest _) (push prompt read) (pop answers)))
                ((symbol-function 'read-file-name)
                 (lambda (prompt &rest _) (push prompt read) (pop answers))))
        (srt-visit ws "stagerunner.yaml")
        (setq answers (list (expand-file-name "pipelines/research.pipeline.yaml" ws)
                            "{\"topic\": \"Tide pools\"}"))
        (call-interactively #'stagerunner-run-pipeline)
        (should (equal (reverse read) '("Pipeline file: " "Input (JSON): ")))
        (srt-wait (lambda ()
                    (let ((view (car (hash-table-values stagerunner--job-views))))
                      (and view (equal (plist-get (stagerunner-job-view-doc view) :state)
                                       "done"))))
                  "the job")
        (let ((id (stagerunner-job-view-job-id (srt-job-view))))
          (with-current-buffer (format "*stagerunner job: %s*" id)
            ;; In the job's buffer the job is the default.
            (setq read nil answers (list id))
            (call-interactively #'stagerunner-job-status)
            (should (equal read (list (format "Job (default %s): " id))))
            (should (equal (stagerunner--current-job) id)))
          (should (equal (gethash "topic" (stagerunner--parse-json
                                           (srt-read (expand-file-name
                                                      (format "jobs/%s/input.json" id) ws))))
                         "Tide pools")))))))

;;;; Lifecycle

(ert-deftest stagerunner-package/check ()
  "The health check: server, version, workspace, initialize, problems, log."
  (srt-with-package
    (let ((ws (srt-workspace)))
      (srt-visit ws "stagerunner.yaml")
      (let ((lines (stagerunner-check)))
        (should (equal (length lines) 7))
        (should (string-prefix-p (format "ok      Emacs %s, jsonrpc 1.0." emacs-version)
                                 (nth 0 lines)))
        (should (equal (nth 1 lines) (format "ok      server: %s" (srt-bin))))
        (should (string-match-p "\\`ok      version: stagerunner [0-9.]+ (protocol 1\\.0" (nth 2 lines)))
        (should (equal (nth 3 lines) (format "ok      workspace: %s" ws)))
        (should (string-match-p
                 (format "\\`ok      initialize: protocol 1\\.0, stagerunner [0-9.]+, framing lsp, root %s\\'"
                         (regexp-quote ws))
                 (nth 4 lines)))
        (should (equal (nth 5 lines)
                       "ok      problems: workspace valid: 0 errors, 0 warnings (6 templates, 10 generations)"))
        (should (equal (nth 6 lines)
                       (format "info    log:  *stagerunner %s stderr* (M-x stagerunner-log)"
                               (abbreviate-file-name ws))))
        (should (equal (cdr (srt-lines "*stagerunner check*")) lines)))
      (srt-plant-problems ws)
      (should (equal (nth 5 (stagerunner-check))
                     "warning problems: workspace invalid: 2 errors, 1 warning (7 templates, 11 generations)"))
      (let ((stagerunner-program "/nonexistent/stagerunner"))
        (should (equal (cdr (stagerunner-check))
                       '("error   server: `/nonexistent/stagerunner' is not executable; put stagerunner on `exec-path' or set `stagerunner-program'")))))))

(ert-deftest stagerunner-package/stop-and-log ()
  "Stop sends shutdown and exit: status 0; the log holds the server's stderr."
  (srt-with-package
    (let ((ws (srt-workspace))
          (stagerunner-program-args '("--log-level" "info")))
      (srt-visit ws "stagerunner.yaml")
      (let* ((conn (stagerunner-connection))
             (process (stagerunner-server-process conn)))
        (should (eq (stagerunner-connection) conn))
        (should (equal (process-command process)
                       (list (srt-bin) "serve" "--workspace" ws "--log-level" "info")))
        (should (eq (process-type process) 'real))
        (with-current-buffer (stagerunner-events ws)
          (should (string-search ":method \"initialize\"" (buffer-string)))
          (should (string-match-p ":clientInfo[ \t\n]*(:name \"stagerunner.el\"" (buffer-string))))
        (should (equal (stagerunner-stop) (list (cons ws 0))))
        (should (equal (process-exit-status process) 0))
        (should-not (process-live-p process))
        (should (null (stagerunner-connections)))
        (should (equal (srt-messages-matching "stopped") '("StageRunner: 1 server stopped")))
        (let ((log (stagerunner-log ws)))
          (with-current-buffer log
            (should (string-search "[stagerunner] serving on stdio" (buffer-string)))
            (should (string-search "reason=exit notification" (buffer-string))))))
      ;; The next command starts a server again.
      (should (equal (plist-get (car (srt-await #'stagerunner-validate)) :valid) t))
      (should (equal (length (stagerunner-connections)) 1)))))

(ert-deftest stagerunner-package/server-exits-unexpectedly ()
  "Exit without shutdown: reported with the code; the next command starts another."
  (srt-with-package
    (let ((ws (srt-workspace)))
      (srt-visit ws "stagerunner.yaml")
      (let* ((conn (stagerunner-connection))
             (process (stagerunner-server-process conn))
             (id (stagerunner-request "ping" nil)))
        (should (integerp id))
        (jsonrpc-notify conn :exit nil)
        (srt-wait (lambda () (srt-messages-matching "exited with code")) "the report")
        (should (equal (process-exit-status process) 1))
        (should (string-prefix-p (format "StageRunner: the server exited with code 1 (workspace %s)" ws)
                                 (car (srt-messages-matching "exited with code"))))
        (should-not (stagerunner--live-p conn))
        (should-not (eq (stagerunner-connection) conn))
        (should (equal (plist-get (car (srt-await #'stagerunner-validate)) :valid) t))))))

(ert-deftest stagerunner-package/server-cannot-start ()
  "Bad arguments, or no executable: an error with the stderr or what to set."
  (srt-with-package
    (let ((ws (srt-workspace)))
      (srt-visit ws "stagerunner.yaml")
      (let* ((stagerunner-program-args '("--max-message-size" "10"))
             (message (cadr (should-error (stagerunner-connection)))))
        (should (string-prefix-p (format "StageRunner: the server exited with code 64 (workspace %s)" ws)
                                 message))
        (should (string-search "  Error: --max-message-size must be at least 1024 bytes (got 10)"
                               message)))
      (should (null (stagerunner-connections)))
      (let ((stagerunner-program "/nonexistent/stagerunner"))
        (should (equal (cadr (should-error (stagerunner-validate) :type 'user-error))
                       (format-message "Cannot run `/nonexistent/stagerunner': not found or not executable; put stagerunner on `exec-path' or set `stagerunner-program'")))))))

(ert-deftest stagerunner-package/cancel-request ()
  "A request of the package's API is cancelled by its id: -32800."
  (srt-with-package
    (let* ((ws (srt-workspace "research-task"))
           (outcome nil))
      (srt-write (expand-file-name "tasks/slow.task.yaml" ws)
                 "stages: { ingestion: { command: [sleep, \"30\"] } }")
      (let ((id (stagerunner-request "runTask" '(:task "tasks/slow.task.yaml" :runId "s-1")
                                     :root ws
                                     :on-result (lambda (r) (setq outcome (list :result r)))
                                     :on-error (lambda (e) (setq outcome (list :error e)))))
            (commands (expand-file-name "data/tasks/slow/s-1/.commands" ws)))
        (srt-wait (lambda () (and (file-directory-p commands)
                                  (directory-files commands nil "\\`[^.]")))
                  "the slow stage")
        (stagerunner-cancel-request id (stagerunner-connection ws))
        (srt-wait (lambda () outcome) "the answer" 10)
        (should (equal (plist-get (cadr outcome) :code) -32800))))))

(ert-deftest stagerunner-package/quitting-emacs-stops-the-server ()
  "Emacs exiting sends shutdown and exit: the server's exit status is 0."
  (let* ((ws (srt-workspace))
         (dir (make-temp-file "srt-quit-" t))
         (status (expand-file-name "status" dir))
         (wrapper (expand-file-name "stagerunner" dir))
         (script (expand-file-name "quit.el" dir)))
    (srt-write wrapper "#!/bin/sh"
               (format "%s \"$@\"" (shell-quote-argument (srt-bin)))
               (format "echo \"status $?\" >> %s" (shell-quote-argument status)))
    (set-file-modes wrapper #o755)
    (srt-write script
               (format "(setq stagerunner-program %S)" wrapper)
               "(require 'stagerunner)"
               (format "(find-file %S)" (expand-file-name "stagerunner.yaml" ws))
               "(let (done) (stagerunner-validate (lambda (r _e) (setq done r)))"
               "  (with-timeout (20 (kill-emacs 3)) (while (not done) (accept-process-output nil 0.05))))"
               "(kill-emacs 0)")
    (should (equal (call-process (expand-file-name invocation-name invocation-directory)
                                 nil nil nil "--batch" "-Q"
                                 "-L" (file-name-directory (locate-library "stagerunner"))
                                 "-l" script)
                   0))
    (srt-wait (lambda () (file-exists-p status)) "the server to exit" 10)
    (should (equal (srt-read status) "status 0\n"))))

(provide 'stagerunner-package-test)
;;; stagerunner-package-test.el ends here
