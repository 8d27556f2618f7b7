//! Reports of a run: the terminal table, JSON, and the HTML page with its
//! sequence diagrams.

pub mod diagram;
pub mod html;
pub mod json;
pub mod markup;
pub mod table;
