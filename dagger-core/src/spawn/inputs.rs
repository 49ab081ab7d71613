//! What `spawn_with` accepts as inputs, and what the task receives for each:
//!
//! | input | the task receives |
//! |---|---|
//! | `&handle` | `&T` |
//! | `handle` | `T` (moved when it is the last handle, cloned otherwise; needs `T: Clone`) |
//! | `&[handle, ...]` / `&Vec<Handle<T>>` | `Vec<&T>` |
//! | `Vec<Handle<T>>` | `Vec<T>` |
//!
//! Several inputs go in a tuple (up to 8); the task is a function of as many parameters.

use super::handle::Handle;
use crate::runtime::task::Header;

/// One input of a task, resolved to its value when the task runs.
pub trait Input: Send + 'static {
    /// What the task receives.
    type Value<'a>
    where
        Self: 'a;
    #[doc(hidden)]
    fn dependency_count(&self) -> usize;
    #[doc(hidden)]
    fn each_dependency(&self, each: &mut dyn FnMut(&Header));
    #[doc(hidden)]
    fn value(&mut self) -> Self::Value<'_>;
}

/// Converts an argument of `spawn_with` into an [`Input`].
pub trait IntoInput {
    /// The input it becomes.
    type Input: Input;
    /// Converts.
    fn into_input(self) -> Self::Input;
}

/// `handle`: the task receives the value.
pub struct ByValue<T>(Handle<T>);
/// `&handle`: the task receives a reference.
pub struct ByRef<T>(Handle<T>);
/// `Vec<Handle<T>>`: the task receives every value.
pub struct AllByValue<T>(Vec<Handle<T>>);
/// `&[Handle<T>]`: the task receives a reference to every value.
pub struct AllByRef<T>(Vec<Handle<T>>);

impl<T: Clone + Send + Sync + 'static> Input for ByValue<T> {
    type Value<'a> = T;
    fn dependency_count(&self) -> usize {
        1
    }
    fn each_dependency(&self, each: &mut dyn FnMut(&Header)) {
        each(self.0.header())
    }
    fn value(&mut self) -> T {
        self.0.take_or_clone()
    }
}

impl<T: Send + Sync + 'static> Input for ByRef<T> {
    type Value<'a> = &'a T;
    fn dependency_count(&self) -> usize {
        1
    }
    fn each_dependency(&self, each: &mut dyn FnMut(&Header)) {
        each(self.0.header())
    }
    fn value(&mut self) -> &T {
        self.0.fetch_ref().expect("inputs are done and succeeded")
    }
}

impl<T: Clone + Send + Sync + 'static> Input for AllByValue<T> {
    type Value<'a> = Vec<T>;
    fn dependency_count(&self) -> usize {
        self.0.len()
    }
    fn each_dependency(&self, each: &mut dyn FnMut(&Header)) {
        self.0.iter().for_each(|h| each(h.header()))
    }
    fn value(&mut self) -> Vec<T> {
        self.0.iter_mut().map(Handle::take_or_clone).collect()
    }
}

impl<T: Send + Sync + 'static> Input for AllByRef<T> {
    type Value<'a> = Vec<&'a T>;
    fn dependency_count(&self) -> usize {
        self.0.len()
    }
    fn each_dependency(&self, each: &mut dyn FnMut(&Header)) {
        self.0.iter().for_each(|h| each(h.header()))
    }
    fn value(&mut self) -> Vec<&T> {
        self.0
            .iter()
            .map(|h| h.fetch_ref().expect("inputs are done and succeeded"))
            .collect()
    }
}

impl<T: Clone + Send + Sync + 'static> IntoInput for Handle<T> {
    type Input = ByValue<T>;
    fn into_input(self) -> ByValue<T> {
        ByValue(self)
    }
}

impl<T: Send + Sync + 'static> IntoInput for &Handle<T> {
    type Input = ByRef<T>;
    fn into_input(self) -> ByRef<T> {
        ByRef(self.clone())
    }
}

impl<T: Clone + Send + Sync + 'static> IntoInput for Vec<Handle<T>> {
    type Input = AllByValue<T>;
    fn into_input(self) -> AllByValue<T> {
        AllByValue(self)
    }
}

impl<T: Send + Sync + 'static> IntoInput for &[Handle<T>] {
    type Input = AllByRef<T>;
    fn into_input(self) -> AllByRef<T> {
        AllByRef(self.to_vec())
    }
}

impl<T: Send + Sync + 'static> IntoInput for &Vec<Handle<T>> {
    type Input = AllByRef<T>;
    fn into_input(self) -> AllByRef<T> {
        AllByRef(self.clone())
    }
}
