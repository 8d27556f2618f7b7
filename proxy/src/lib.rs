//! passthru
