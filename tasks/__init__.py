"""Built-in tasks: plugins registered like third-party ones."""
