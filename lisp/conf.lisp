;;;; Confs: a property-list conf written to a private file for the tool,
;;;; and the merged conf read back from the tool's `check`.

(in-package "DAEMONIZATION")

(defmacro define-constant (name value &optional documentation)
  "DEFCONSTANT that can be loaded again (a list is never EQL to itself
re-read)."
  `(defconstant ,name (if (boundp ',name) (symbol-value ',name) ,value)
     ,@(when documentation (list documentation))))

(define-symbol-macro +conf-parameters+ (getf (tool-info) :keys))
(setf (documentation '+conf-parameters+ 'variable)
      "The conf keys, as the tool knows them (its table, in its order):
the original's 14, then the tool's extensions.")

(define-constant +function-keys+ '(:main-function :before-init-fn :before-parent-exit-fn))

(defun conf-syntax-package ()
  (find-package "DAEMONIZATION.CONF-SYNTAX"))

;;; Writing a property-list conf

(defun keywordize (key)
  (if (and (symbolp key) key (not (keywordp key)))
      (intern (symbol-name key) "KEYWORD")
      key))

(defun conf-plist (conf)
  "CONF, a property list, with its keys as keywords."
  (unless (ignore-errors (evenp (list-length conf)))
    (fail "the conf ~s is not a property list (an even number of keys and values)" conf))
  (loop for (key value) on conf by #'cddr
        collect (keywordize key)
        collect value))

(defun conf-directory (plist)
  "The directory a property-list conf's relative paths and :this-dir mean:
that of its :conf-params-file when it names one (as in the original), else
the caller's directory."
  (let ((file (getf plist :conf-params-file)))
    (if (or (stringp file) (pathnamep file))
        (uiop:pathname-directory-pathname (absolute-native file (base-directory)))
        (base-directory))))

(defun parent-file (file base)
  "A relative :parent-conf-file FILE without :parent-conf-file-dir: in BASE
(the list's directory) when it is there, else in GET-CONF-FILES-DIR (the
original's place)."
  (let ((here (absolute-native file base)))
    (if (probe-file (uiop:parse-native-namestring here))
        here
        (absolute-native file (get-conf-files-dir)))))

(defun absolute-paths (plist)
  "PLIST with relative paths and :this-dir made absolute against its
CONF-DIRECTORY (a relative :parent-conf-file without :parent-conf-file-dir:
see PARENT-FILE), pathnames as native
namestrings, and no :conf-params-file (the tool sets it). A string that
starts with ~ is left to the tool (the caller's home)."
  (let ((base (conf-directory plist)))
    (flet ((path-p (value)
             (or (pathnamep value)
                 (and (stringp value)
                      (not (and (plusp (length value)) (char= (char value 0) #\~)))))))
      (loop for (key value) on plist by #'cddr
            unless (eq key :conf-params-file)
              collect key
              and collect
                  (case key
                    ((:pid-file-dir :parent-conf-file-dir)
                     (cond ((eq value :this-dir) (uiop:native-namestring base))
                           ((path-p value) (absolute-native value base :directory t))
                           (t value)))
                    ((:output)
                     (if (path-p value) (absolute-native value base) value))
                    ((:parent-conf-file)
                     (cond ((not (path-p value)) value)
                           ((getf plist :parent-conf-file-dir)
                            (if (pathnamep value) (uiop:native-namestring value) value))
                           (t (parent-file value base))))
                    (t (if (pathnamep value) (uiop:native-namestring value) value)))))))

(defun character-strings (value)
  "VALUE with its strings as character strings, which print readably as
\"...\" (a base string would print as #A(...), which conf files do not
take)."
  (typecase value
    (string (coerce value '(simple-array character (*))))
    (cons (cons (character-strings (car value)) (character-strings (cdr value))))
    (t value)))

(defun function-source (key function)
  "The source of FUNCTION, the value of KEY, as #'(lambda ...): the daemon
is another Lisp process, so a function object travels as its source."
  (let ((lambda-expression (function-lambda-expression function)))
    (unless (and (consp lambda-expression) (eq (first lambda-expression) 'lambda))
      (fail "the ~s value ~s is a function whose source this Lisp cannot recover (FUNCTION-LAMBDA-EXPRESSION returns NIL): the daemon is a new Lisp process, not a fork of this one, so write the value as a lambda form, '(lambda () ...), or as a symbol naming a function the daemon defines"
            key function))
    (concatenate 'string "#'" (prin1-to-string (character-strings lambda-expression)))))

(defun value-text (key value)
  (handler-case
      (if (and (member key +function-keys+) (functionp value))
          (function-source key value)
          (prin1-to-string (character-strings value)))
    (print-not-readable ()
      (fail "the ~s value ~s cannot be written in a conf file (it has no readable printed form)"
            key value))))

(defun conf-text (conf)
  "The text of a conf file holding the property list CONF."
  (let ((plist (absolute-paths (conf-plist conf))))
    (with-standard-io-syntax
      (let ((*package* (conf-syntax-package))
            (*print-readably* t))
        (format nil "(~{~s ~a~^~% ~})"
                (loop for (key value) on plist by #'cddr
                      collect key
                      collect (value-text key value)))))))

(defun private-temporary-file ()
  "A new empty file only this user may read (mktemp creates it with mode
0600), as a native namestring."
  (multiple-value-bind (path error-output code)
      (ignore-errors
       (uiop:run-program '("mktemp" "-t" "daemonization-conf.XXXXXX")
                         :output '(:string :stripped t) :error-output :string
                         :ignore-error-status t))
    (unless (and (eql code 0) (plusp (length path)))
      (fail "could not create a temporary conf file with mktemp: ~a"
            (or error-output "mktemp could not run")))
    path))

(defun replace-all (string old new)
  (with-output-to-string (out)
    (loop for start = 0 then (+ found (length old))
          for found = (search old string :start2 start)
          do (write-string string out :start start :end found)
          while found
          do (write-string new out))))

(defun call-with-conf-file (conf function)
  "Calls FUNCTION with the native namestring of a conf file holding CONF: a
path (relative to the caller's directory), or a property list written to a
private temporary file, deleted when FUNCTION returns."
  (typecase conf
    ((or string pathname)
     (funcall function (absolute-native conf (base-directory))))
    (list
     (let ((text (conf-text conf))
           (file (private-temporary-file)))
       (unwind-protect
            (progn
              (with-open-file (out (uiop:parse-native-namestring file)
                                   :direction :output :if-exists :overwrite
                                   :external-format :utf-8)
                (write-string text out))
              (handler-case (funcall function file)
                (daemonization-error (condition)
                  ;; The temporary file is gone when the message is read.
                  (fail "~a" (replace-all (daemonization-error-message condition)
                                          file "(the conf property list)")))))
         (ignore-errors (delete-file (uiop:parse-native-namestring file))))))
    (t (fail "the conf must be a conf file's path or a property list, not ~s" conf))))

(defmacro with-conf-file ((file conf) &body body)
  `(call-with-conf-file ,conf (lambda (,file) ,@body)))

;;; Reading the merged conf (`check`)

(defun check-conf (file &key (echo-warnings t))
  "The tool's `check` output for FILE: the merged conf as text. A conf error
is a DAEMONIZATION-ERROR with the tool's message."
  (multiple-value-bind (output error-output code) (run-tool (list file "check"))
    (when echo-warnings
      (echo-warnings error-output))
    (unless (eql code 0)
      (fail "~a" (or (error-text error-output)
                     (format nil "daemonization check failed (exit status ~a)" code))))
    output))

(defun conf-name (text)
  "The :name of the merged conf TEXT, read without evaluating anything: the
function values, where #. may be, are skipped under *READ-SUPPRESS*."
  (ignore-errors
   (with-standard-io-syntax
     (let ((*read-eval* nil)
           (*package* (conf-syntax-package)))
       (with-input-from-string (in text)
         (loop for char = (peek-char t in)
               until (char= char #\()
               do (read-line in))
         (read-char in)
         (loop for char = (peek-char t in)
               until (char= char #\))
               do (let ((key (read in)))
                    (if (member key +function-keys+)
                        (let ((*read-suppress* t)) (read in))
                        (let ((value (read in)))
                          (when (eq key :name) (return value)))))))))))

(defun read-merged-conf (text)
  "The merged conf TEXT read in CL-USER with *READ-EVAL* true."
  (handler-case
      (with-standard-io-syntax
        (let ((*read-eval* t)
              (*package* (find-package "COMMON-LISP-USER")))
          (read-from-string text)))
    (error (condition)
      (fail "could not read the merged conf in this Lisp: ~a~%~a" condition text))))

(defun probe-conf-params (conf)
  "The merged conf of CONF (a path or a property list), as the tool's
`check` prints it: every key, parents and the default conf merged, sorted
by key; for a property list, its own values as given. It is read in CL-USER with *READ-EVAL* true, as the daemon reads
function values: a #.(...) form is evaluated here, in this Lisp, and its
value (say a function) is in the result; #'(lambda ...) reads as (FUNCTION
(LAMBDA ...)). :conf-params-file is the absolute conf file; for a property
list it is the list's own :conf-params-file, or absent."
  (let ((merged (with-conf-file (file conf)
                  (read-merged-conf (check-conf file)))))
    (if (not (listp conf))
        merged
        ;; The list's own values, as given (the original merged the list
        ;; itself): a relative :parent-conf-file stays relative, a function
        ;; object stays that object.
        (let ((own (conf-plist conf)))
          (loop for (key value) on merged by #'cddr
                for given = (getf own key '%absent)
                unless (and (eq key :conf-params-file) (eq given '%absent))
                  collect key
                  and collect (if (eq given '%absent) value given))))))

(defun equal-conf-params (conf-params1 conf-params2)
  "Whether two conf property lists have the same keys with EQUAL values,
in any order; :conf-params-file is ignored."
  (flet ((keys (plist)
           (loop for key in plist by #'cddr
                 unless (eq key :conf-params-file) collect key)))
    (let ((keys1 (keys conf-params1))
          (keys2 (keys conf-params2)))
      (and (null (set-exclusive-or keys1 keys2))
           (= (length keys1) (length (remove-duplicates keys1)))
           (= (length keys2) (length (remove-duplicates keys2)))
           (every (lambda (key) (equal (getf conf-params1 key) (getf conf-params2 key)))
                  keys1)))))
