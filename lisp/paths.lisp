;;;; Where things are: the tool's pid directory rule, the conf examples,
;;;; the caller's directory, and users of processes (from /proc, Linux, as
;;;; the tool itself).

(in-package "DAEMONIZATION")

(defun env (name)
  "The environment variable NAME, or NIL when it is unset or empty (the
tool's rule)."
  (let ((value (uiop:getenv name)))
    (and value (plusp (length value)) value)))

(defun native-directory (namestring)
  (uiop:ensure-directory-pathname (uiop:parse-native-namestring namestring)))

(defun base-directory ()
  "The directory relative paths given to this API are relative to:
*DEFAULT-PATHNAME-DEFAULTS*, itself merged with the current directory."
  (uiop:pathname-directory-pathname
   (uiop:merge-pathnames* *default-pathname-defaults* (uiop:getcwd))))

(defun absolute-native (path base &key directory)
  "PATH (a native namestring or a pathname) made absolute against BASE, as
a native namestring."
  (let ((path (if (pathnamep path) path (uiop:parse-native-namestring path))))
    (uiop:native-namestring
     (uiop:merge-pathnames* (if directory (uiop:ensure-directory-pathname path) path)
                            base))))

(defun proc-uid (pid)
  "The real uid of process PID (an integer or \"self\"), or NIL when it is
gone (or a zombie) or /proc cannot tell."
  (ignore-errors
   (with-open-file (in (format nil "/proc/~a/status" pid))
     (loop for line = (read-line in nil)
           while line
           when (and (uiop:string-prefix-p "State:" line)
                     (member (char (string-left-trim '(#\Space #\Tab) (subseq line 6)) 0)
                             '(#\Z #\X)))
             return nil
           when (uiop:string-prefix-p "Uid:" line)
             return (parse-integer line :start 4 :junk-allowed t)))))

(defun user-name (uid)
  "The name /etc/passwd gives UID, else UID as a decimal string."
  (or (ignore-errors
       (with-open-file (in "/etc/passwd")
         (loop for line = (read-line in nil)
               while line
               do (let ((fields (uiop:split-string line :separator ":")))
                    (when (and (third fields)
                               (eql uid (parse-integer (third fields) :junk-allowed t)))
                      (return (first fields)))))))
      (princ-to-string uid)))

(defun process-user (pid)
  "The user process PID runs as, or NIL when it is gone."
  (let ((uid (and (integerp pid) (proc-uid pid))))
    (and uid (user-name uid))))

(defun get-pid-files-dir ()
  "The directory of pid files of confs whose :pid-file-dir is nil, as the
tool says (its rule: $DAEMONIZATION_PID_DIR, else /run/daemonization/ for
root, else $XDG_RUNTIME_DIR/daemonization/, else /tmp/daemonization-UID/)."
  (native-directory (getf (tool-info) :pid-dir)))

(defvar *conf-files-dirname*
  (asdf:system-relative-pathname "daemonization" "../conf-examples/")
  "The directory of conf files, as in the original: a relative
:parent-conf-file of a property-list conf (without :parent-conf-file-dir)
is found there, and so is *DEFAULT-CONF-FILE-NAME*. A relative one (a
string or a pathname, say \"tests\") is relative to
*DEFAULT-PATHNAME-DEFAULTS*, the caller's directory. Default: the
conf-examples/ directory next to this system's.")

(defvar *default-conf-file-name* "default.conf"
  "The default conf that confs are merged over, as in the original: a
file name in GET-CONF-FILES-DIR, or a path. When the file does not exist,
or is the shipped conf-examples/default.conf, the tool's built-in default
conf (which that file equals) is used.")

(defun get-conf-files-dir ()
  "*CONF-FILES-DIRNAME* as an absolute directory pathname."
  (native-directory (absolute-native *conf-files-dirname* (base-directory) :directory t)))

(defun get-default-conf-file ()
  "The default conf file *DEFAULT-CONF-FILE-NAME* names (relative: in
GET-CONF-FILES-DIR), or NIL when it does not exist: the tool's built-in
default conf is used."
  (let ((file (absolute-native *default-conf-file-name* (get-conf-files-dir))))
    (probe-file (uiop:parse-native-namestring file))))

(defun shipped-default-conf ()
  (probe-file (asdf:system-relative-pathname "daemonization" "../conf-examples/default.conf")))

(defun default-conf-for-tool ()
  "The default conf file to give the tool (DAEMONIZATION_DEFAULT_CONF), as
a native namestring, or NIL for its built-in one (or the caller's own
DAEMONIZATION_DEFAULT_CONF)."
  (let ((file (get-default-conf-file)))
    (and file
         (not (equal file (shipped-default-conf)))
         (uiop:native-namestring file))))
