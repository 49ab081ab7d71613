//! placeholder
pub use dagger_core::*;
pub use dagger_macros::{dag, task};
#[doc(hidden)]
pub mod __private {
    pub use dagger_core::__macro_support::*;
    pub use dagger_core::*;
}
