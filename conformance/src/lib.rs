//! Test fixtures: namespaces, state witnesses, runtime helpers.
