//! Keyed, deterministic, type-valid stand-ins for classified values. Pure:
//! no sockets, no files.
