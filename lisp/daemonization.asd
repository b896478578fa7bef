;;;; The Lisp API of the daemonization library, as a thin client of the
;;;; native `daemonization` tool: every call runs the tool and reads its
;;;; result property list. See "The Lisp API" in ../README.md.

(defsystem "daemonization"
  :description "Run Common Lisp programs as Unix daemons: the daemonization API, driving the native daemonization tool"
  :version "0.1.0"
  :license "MIT"
  :depends-on ("uiop")
  :serial t
  :components ((:file "package")
               (:file "share")
               (:file "paths")
               (:file "tool")
               (:file "conf")
               (:file "daemonized")))
