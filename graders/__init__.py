"""Built-in graders: plugins registered like third-party ones."""
