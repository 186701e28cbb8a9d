//! Messages the server sends (backend): one file per message or tiny family.

mod auth;
mod data_row;
mod error;
mod key_data;
mod negotiate;
mod notification;
mod parameter_status;
mod ready;
mod row_description;

pub use auth::*;
pub use data_row::*;
pub use error::*;
pub use key_data::*;
pub use negotiate::*;
pub use notification::*;
pub use parameter_status::*;
pub use ready::*;
pub use row_description::*;
