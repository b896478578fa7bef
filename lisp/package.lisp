;;;; The package: the original library's exports, plus the program variable
;;;; and the condition of this client.

(defpackage "DAEMONIZATION"
  (:use "COMMON-LISP")
  (:export
   ;; commands
   "DAEMONIZED" "+ALL-DAEMON-COMMANDS+" "GET-DAEMON-LOG-LIST"
   ;; confs
   "+CONF-PARAMETERS+" "PROBE-CONF-PARAMS" "EQUAL-CONF-PARAMS"
   ;; the internal result's structure
   "EXTRA-STATUS" "MAKE-EXTRA-STATUS" "EXTRA-STATUS-P" "COPY-EXTRA-STATUS"
   "EXTRA-STATUS-PID" "EXTRA-STATUS-EXIT-CODE" "EXTRA-STATUS-NAME"
   "EXTRA-STATUS-PID-FILE" "EXTRA-STATUS-USER"
   ;; where things are
   "GET-PID-FILES-DIR" "GET-CONF-FILES-DIR" "GET-DEFAULT-CONF-FILE"
   ;; this client
   "*DAEMONIZATION-PROGRAM*" "DAEMONIZATION-ERROR" "DAEMONIZATION-ERROR-RESULT"))

(defpackage "DAEMONIZATION.CONF-SYNTAX"
  (:use "COMMON-LISP")
  (:documentation "The package conf files are written and read in: it uses
only COMMON-LISP, so every other symbol is written with its package, and
reads back the same in the daemon's CL-USER whatever the caller's Lisp."))
