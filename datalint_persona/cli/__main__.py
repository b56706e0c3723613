"""``python -m datalint_persona.cli``: the ``persona-lint`` command."""

from datalint_persona.cli.main import main

main()
