"""The codemod (`migrate-trial`) and the linter (`lint-trial`); never imports torch."""
