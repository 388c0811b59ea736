//! libcni semantics.
