//! Handshake observation (being written).
