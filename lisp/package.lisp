;;;; The packages: the original library's public ones (DAEMONIZATION,
;;;; DAEMONIZATION-UTILS, and DAEMON-SHARE for its status constants), each
;;;; symbol in the package it was in, plus the program variable and the
;;;; condition of this client.

(defpackage "DAEMON-SHARE"
  (:use "COMMON-LISP")
  (:documentation "The original's shared package, for what its users read
of it: the status constants of :internal-result, and the EXTRA-STATUS
structure (whose symbols DAEMONIZATION exports too, as in the original).")
  (:export
   "+EX-OK+" "+EX-GENERAL+" "+EX-SOFTWARE+" "+EX-UNAVAILABLE+" "+EX-CANTCREATE+"
   "+PID-FILE-NOT-FOUND+" "+PID-FILE-EXISTS+" "+PROCESS-NOT-EXISTS+"
   "EXTRA-STATUS" "MAKE-EXTRA-STATUS" "EXTRA-STATUS-P" "COPY-EXTRA-STATUS"
   "EXTRA-STATUS-PID" "EXTRA-STATUS-EXIT-CODE" "EXTRA-STATUS-NAME"
   "EXTRA-STATUS-PID-FILE" "EXTRA-STATUS-USER"))

(defpackage "DAEMONIZATION-UTILS"
  (:use "COMMON-LISP")
  (:documentation "The original's utilities package.")
  (:export "GET-ARGS" "GET-PROC-ID" "RECREATE-FILE-ALLOW-WRITE-OTHER"))

(defpackage "DAEMONIZATION"
  (:use "COMMON-LISP")
  (:import-from "DAEMON-SHARE"
   "+EX-OK+" "+EX-SOFTWARE+" "+EX-UNAVAILABLE+"
   "+PID-FILE-NOT-FOUND+" "+PROCESS-NOT-EXISTS+"
   "EXTRA-STATUS" "MAKE-EXTRA-STATUS" "EXTRA-STATUS-P" "COPY-EXTRA-STATUS"
   "EXTRA-STATUS-PID" "EXTRA-STATUS-EXIT-CODE" "EXTRA-STATUS-NAME"
   "EXTRA-STATUS-PID-FILE" "EXTRA-STATUS-USER")
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
   "*CONF-FILES-DIRNAME*" "*DEFAULT-CONF-FILE-NAME*"
   ;; this client
   "*DAEMONIZATION-PROGRAM*" "DAEMONIZATION-ERROR" "DAEMONIZATION-ERROR-RESULT"))

(defpackage "DAEMONIZATION.CONF-SYNTAX"
  (:use "COMMON-LISP")
  (:documentation "The package conf files are written and read in: it uses
only COMMON-LISP, so every other symbol is written with its package, and
reads back the same in the daemon's CL-USER whatever the caller's Lisp."))
