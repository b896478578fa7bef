;;;; DAEMONIZED: a daemon command run by the tool, its result property list
;;;; in the original's shape, printing, and the ON-ERROR modes.

(in-package "DAEMONIZATION")

(define-constant +all-daemon-commands+
    '("start" "stop" "zap" "kill" "restart" "nodaemon" "status")
  "The commands DAEMONIZED takes.")

(defstruct extra-status
  "The detail of a result: the daemon's pid, the tool's exit code, the
conf's :name, the pid file, and the user the daemon runs as."
  pid exit-code name pid-file user)

;;; The results of this image

(defvar *daemon-log* '() "Result property lists, newest first.")
(defvar *daemon-log-limit* 1000 "How many results GET-DAEMON-LOG-LIST keeps.")

(defun log-result (plist)
  (push plist *daemon-log*)
  (let ((tail (nthcdr (1- *daemon-log-limit*) *daemon-log*)))
    (when tail (setf (cdr tail) nil)))
  plist)

(defun get-daemon-log-list ()
  "The result property lists of the DAEMONIZED calls of this image (the
last *DAEMON-LOG-LIMIT*, 1000 by default), oldest first. The tool's own log
lines go where its logging conf says (LOGGING_CONF)."
  (reverse *daemon-log*))

;;; Results

(defun command-text (command)
  (if (or (stringp command) (symbolp command))
      (string-downcase (string command))
      (princ-to-string command)))

(defun command-name (command)
  (let ((name (command-text command)))
    (unless (member name +all-daemon-commands+ :test #'string=)
      (fail "unknown command ~s: the command must be one of ~s" command +all-daemon-commands+))
    name))

(defun read-result (output)
  "The tool's result property list in OUTPUT, read without evaluation, or
NIL when OUTPUT holds none."
  (let ((plist (ignore-errors
                (with-standard-io-syntax
                  (let ((*read-eval* nil)
                        (*package* (conf-syntax-package)))
                    (read-from-string output))))))
    (and (ignore-errors (evenp (list-length plist)))
         (stringp (getf plist :command))
         (stringp (getf plist :pid-file))
         plist)))

(defun internal-status (command result status reason)
  "The original's :internal-result :status of an outcome (the constants of
DAEMON-SHARE)."
  (cond ((equal reason "internal-error") +ex-software+)
        ((equal command "status")
         (cond ((equal status "running") +ex-ok+)
               ((equal reason "service-unavailable") +ex-unavailable+)
               ((equal reason "no-pid-file") +pid-file-not-found+)
               (t +ex-software+)))
        ((equal result "success") +ex-ok+)
        ((equal reason "no-pid-file") +pid-file-not-found+)
        ((equal reason "not-running") +process-not-exists+)
        (t +ex-software+)))

(defun make-result (&key result command status reason pid pid-file exit-code name more)
  "The original's result property list; MORE, the tool's other keys and
values, if any, come before :internal-result."
  (append (list :result result :command command :status status :reason reason
                :pid pid :pid-file pid-file)
          more
          (list :internal-result
                (list :status (internal-status command result status reason)
                      :extra-status (make-extra-status :pid pid :exit-code exit-code :name name
                                                       :pid-file pid-file
                                                       :user (process-user pid))))))

(defun tool-result (plist exit-code name)
  "The result of the tool's PLIST: as printed, but for status, whose
:result is \"success\" when the state could be told (the original's)."
  (destructuring-bind (&key result command status reason pid pid-file &allow-other-keys) plist
    (make-result :result (if (equal command "status")
                             (if (equal reason "internal-error") "failed" "success")
                             result)
                 :command command :status status :reason reason :pid pid :pid-file pid-file
                 :exit-code exit-code :name name
                 :more (loop for (key value) on plist by #'cddr
                             unless (member key '(:result :command :status :reason :pid :pid-file :line))
                               collect key and collect value))))

(defun failure-result (command exit-code name)
  "The result of a command that produced none."
  (make-result :result "failed" :command command :reason "internal-error"
               :exit-code exit-code :name name))

(defun print-result (plist line print-result-type print-internal-result)
  "Prints a result: LINE, the one line the tool printed for it (its
:line), or the PLIST."
  (progn
    (ecase print-result-type
      (:none)
      (:plist (format t "~&~s~%" plist))
      (:simple
       (when line
         (format t "~&~a~:[~; internal-result - ~s~]~%"
                 line print-internal-result (getf plist :internal-result)))))))

;;; Running a command

(defun run-command (conf command)
  "Runs COMMAND on CONF. Returns the result property list; when the command
failed, the error message (else NIL); whether the tool printed a result;
the part of the message the result's line does not tell; and that line,
as the tool printed it. A failure before the tool could answer is
signalled."
  (let ((command (command-name command)))
    (with-conf-file (file conf)
      ;; `check` first: the conf's :name, and its errors as such. Its
      ;; warnings are the command's own.
      (let ((name (conf-name (check-conf file :echo-warnings nil))))
        (if (string= command "nodaemon")
            (let ((code (nth-value 2 (run-tool (list file "nodaemon") :interactive t))))
              (if (eql code 0)
                  (values (make-result :result "success" :command command :exit-code code :name name)
                          nil t nil nil)
                  (let ((message (format nil "nodaemon: the Lisp exited with status ~a" code)))
                    (values (make-result :result "failed" :command command :exit-code code :name name)
                            message nil message nil))))
            (multiple-value-bind (output error-output code)
                (run-tool (list "--print" "plist" file command))
              (echo-warnings error-output)
              (let ((plist (read-result output))
                    (text (error-text error-output)))
                (cond ((null plist)
                       (let ((message
                               (or text (format nil "the daemonization tool exited with status ~a and printed no result" code))))
                         (values (failure-result command code name) message nil message nil)))
                      (t
                       (let ((result (tool-result plist code name))
                             (line (getf plist :line)))
                         (values result
                                 (and (equal (getf result :result) "failed")
                                      (format nil "~a~@[~%~a~]" line text))
                                 t
                                 text
                                 line)))))))))))

(defun daemonized (conf command &key (on-error :call-error) (recreate-pid-file-on-start t)
                                  (print-result-type :simple) print-internal-result)
  "Runs the daemon COMMAND (one of +ALL-DAEMON-COMMANDS+, a string or a
symbol) for CONF (a conf file's path, or the conf's property list) with the
daemonization tool, and returns the original's result property list:
  (:result :command :status :reason :pid :pid-file
   :internal-result (:status N :extra-status #S(EXTRA-STATUS ...)))
PRINT-RESULT-TYPE: :simple prints the tool's one line (with
PRINT-INTERNAL-RESULT, the internal result after it), :plist the result, and
:none nothing. A failure (the tool could not run, a conf error, or a
:result \"failed\") is a DAEMONIZATION-ERROR, which ON-ERROR handles:
:call-error signals it, :return-error returns it, :as-ignore-errors returns
NIL and it (both print it as ERROR: ... unless PRINT-RESULT-TYPE is :none),
:exit-from-lisp prints it and exits this Lisp with status 1.
RECREATE-PID-FILE-ON-START has no effect: the tool reuses a stale pid file
safely."
  (declare (ignore recreate-pid-file-on-start))
  (check-type on-error (member :call-error :return-error :as-ignore-errors :exit-from-lisp))
  (check-type print-result-type (member :simple :plist :none))
  (multiple-value-bind (result message printable detail line)
      (handler-case (run-command conf command)
        (daemonization-error (condition)
          (let ((message (daemonization-error-message condition)))
            (values (failure-result (command-text command) nil nil) message nil message nil))))
    (log-result result)
    (when printable
      (print-result result line print-result-type print-internal-result))
    (if (null message)
        result
        (let ((condition (make-condition 'daemonization-error :message message :result result))
              ;; What the printed line, if any, has not told yet.
              (untold (if (and printable (not (eq print-result-type :none))) detail message)))
          (flet ((print-error ()
                   (when untold
                     (format *error-output* "~&ERROR: ~a~%" untold)
                     (finish-output *error-output*))))
            (ecase on-error
              (:call-error (error condition))
              (:return-error
               (unless (eq print-result-type :none) (print-error))
               condition)
              (:as-ignore-errors
               (unless (eq print-result-type :none) (print-error))
               (values nil condition))
              (:exit-from-lisp
               (print-error)
               (uiop:quit 1))))))))
