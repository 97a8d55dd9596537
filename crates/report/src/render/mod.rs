//! Renderers take `&Report` and nothing else.

pub mod json;
pub mod text;
