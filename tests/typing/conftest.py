# Type-checker inputs, not tests: .ci/typecheck runs mypy and pyright on them against the
# installed package. Each mistake script marks its deliberate type error "# planted" and
# fails when imported.
collect_ignore_glob = ["user_script.py", "mistakes/*.py"]
