"""The ``persona-lint`` command: parse options, call one function, print."""
