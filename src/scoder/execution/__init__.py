"""Running untrusted, model-generated code: the sandbox and the evalplus runner."""
