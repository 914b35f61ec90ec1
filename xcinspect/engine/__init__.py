"""The shared engine: discovery over xenstore, the monitor, backend facts, actions, the
backend service and its journal. Every front end uses it; it never asks which platform
it runs on and never imports Textual."""
