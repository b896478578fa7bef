;;;; The native tool: finding it, running it, and its error condition.

(in-package "DAEMONIZATION")

(define-condition daemonization-error (error)
  ((message :initarg :message :reader daemonization-error-message)
   (result :initarg :result :initform nil :reader daemonization-error-result
           :documentation "The result property list of the failed command:
the tool's, or one made here (reason \"internal-error\", internal status 70)
when the tool printed none."))
  (:report (lambda (condition stream)
             (write-string (daemonization-error-message condition) stream)))
  (:documentation "A command could not be done: the tool could not run, the
conf is wrong, or the command's :result is \"failed\"."))

(defun fail (control &rest args)
  (error 'daemonization-error
         :message (let ((*print-readably* nil) (*print-pretty* nil))
                    (apply #'format nil control args))))

(defvar *daemonization-program* nil
  "The daemonization tool, a pathname or a native namestring. NIL (the
default): found at each call, see FIND-PROGRAM.")

(defun default-program ()
  (asdf:system-relative-pathname "daemonization" "../target/release/daemonization"))

(defun find-on-path (name)
  (loop for dir in (uiop:split-string (or (env "PATH") "") :separator ":")
        for file = (and (plusp (length dir))
                        (probe-file (uiop:subpathname (native-directory dir) name)))
        when file return file))

(defun find-program ()
  "The tool to run: *DAEMONIZATION-PROGRAM* when set; else the file named
by the environment variable DAEMONIZATION_PROGRAM when set; else
../target/release/daemonization relative to this system's directory (a
checkout built with cargo build --release); else daemonization on PATH."
  (let ((variable (env "DAEMONIZATION_PROGRAM")))
    (cond ((stringp *daemonization-program*)
           (uiop:parse-native-namestring *daemonization-program*))
          (*daemonization-program*)
          (variable
           (or (probe-file (uiop:parse-native-namestring variable))
               (fail "DAEMONIZATION_PROGRAM names ~a, which does not exist: build the tool (cargo build --release in its checkout) or correct the variable"
                     variable)))
          ((probe-file (default-program)))
          ((find-on-path "daemonization"))
          (t (fail "the daemonization tool was not found: not at ~a, not on PATH, and DAEMONIZATION_PROGRAM is not set. Build it: cd ~a && cargo build --release (or set DAEMONIZATION_PROGRAM, or *DAEMONIZATION-PROGRAM*, to its path)"
                   (uiop:native-namestring (default-program))
                   (uiop:native-namestring
                    (uiop:pathname-parent-directory-pathname
                     (asdf:system-source-directory "daemonization"))))))))

(defun run-tool (arguments &key interactive)
  "Runs the tool with ARGUMENTS (strings) in this process's environment and
current directory (and the default conf of GET-DEFAULT-CONF-FILE). Returns its standard output and error output (strings;
NIL when INTERACTIVE, where they are this Lisp's own) and exit code."
  (let* ((tool (uiop:native-namestring (find-program)))
         (default-conf (default-conf-for-tool))
         ;; A default conf other than the built-in one travels in the
         ;; environment, set through env(1) (UIOP's run-program has no
         ;; environment argument).
         (command (if default-conf
                      (list* "/usr/bin/env"
                             (format nil "DAEMONIZATION_DEFAULT_CONF=~a" default-conf)
                             tool arguments)
                      (cons tool arguments))))
    (handler-case
        (if interactive
            (values nil nil
                    (nth-value 2 (uiop:run-program command
                                                   :input :interactive
                                                   :output :interactive
                                                   :error-output :interactive
                                                   :ignore-error-status t)))
            (uiop:run-program command
                              :input nil :output :string :error-output :string
                              :ignore-error-status t))
      (error (condition)
        (fail "could not run the daemonization tool ~a: ~a" tool condition)))))

(defun warning-line-p (line)
  (uiop:string-prefix-p "WARNING: " line))

(defun echo-warnings (error-output)
  "Shows the tool's warnings (a log it could not write, ...) on
*ERROR-OUTPUT*, as the command line would."
  (dolist (line (uiop:split-string (or error-output "") :separator '(#\Newline)))
    (when (warning-line-p line)
      (format *error-output* "~&~a~%" line))))

(defun error-text (error-output)
  "The tool's error output without its warnings and without the ERROR:
prefix of its first line, or NIL when nothing is left."
  (let* ((lines (remove-if #'warning-line-p
                           (uiop:split-string (or error-output "") :separator '(#\Newline))))
         (text (string-trim '(#\Newline #\Space)
                            (format nil "~{~a~^~%~}" lines))))
    (cond ((zerop (length text)) nil)
          ((uiop:string-prefix-p "ERROR: " text) (subseq text 7))
          (t text))))

(defun tool-info ()
  "What the tool knows that this API needs, as its `info` command tells it:
a property list with :keys (the conf keys, in the tool's table order) and
:pid-dir (the tool's pid directory for this process)."
  (multiple-value-bind (output error-output code) (run-tool (list "info"))
    (or (and (eql code 0)
             (ignore-errors
              (with-standard-io-syntax
                (let ((*read-eval* nil))
                  (read-from-string output)))))
        (fail "the daemonization tool did not tell what it knows (status ~a): ~a"
              code (or (error-text error-output) "no answer")))))
