//! Locks for data shared with interrupt handlers.

use core::ops::{Deref, DerefMut};
use x86_64::instructions::interrupts;

/// A spinlock that keeps interrupts off on its CPU while held, so an
/// interrupt handler on the same CPU can never spin on it forever.
pub struct IrqSpinlock<T> {
    inner: spin::Mutex<T>,
}

pub struct IrqSpinlockGuard<'a, T> {
    guard: Option<spin::MutexGuard<'a, T>>,
    interrupts_were_enabled: bool,
}

impl<T> IrqSpinlock<T> {
    pub const fn new(value: T) -> Self {
        IrqSpinlock { inner: spin::Mutex::new(value) }
    }

    /// The value, through exclusive access (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }

    pub fn lock(&self) -> IrqSpinlockGuard<'_, T> {
        let interrupts_were_enabled = interrupts::are_enabled();
        interrupts::disable();
        IrqSpinlockGuard { guard: Some(self.inner.lock()), interrupts_were_enabled }
    }
}

impl<T> Deref for IrqSpinlockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // The guard is Some until drop.
        self.guard.as_deref().unwrap_or_else(|| unreachable!())
    }
}

impl<T> DerefMut for IrqSpinlockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_deref_mut().unwrap_or_else(|| unreachable!())
    }
}

impl<T> Drop for IrqSpinlockGuard<'_, T> {
    fn drop(&mut self) {
        // Release the lock before interrupts can come back.
        self.guard.take();
        if self.interrupts_were_enabled {
            interrupts::enable();
        }
    }
}
