//! The WeCom side of orgsync: the API client and the directory pull.

mod errcode;
mod secret;
mod wire;

pub use errcode::{ApiError, ErrcodeClass, ErrcodeInfo};
pub use secret::Secret;
