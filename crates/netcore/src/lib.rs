//! Kernel access shared by every plugin.
