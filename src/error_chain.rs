//! An error and its causes on one line, `: `-joined as `anyhow`'s `{:#}` prints them.
//! Errors keep their cause in `#[source]`, never in their message; this is how the places
//! that report an error and go on (a warning, a line of a report) show the whole of it.

use std::error::Error;
use std::fmt;

pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading the plan")]
    struct Outer(#[source] std::io::Error);

    /// Each cause once, in order, as `{:#}` of the same error in `anyhow` prints it.
    #[test]
    fn the_chain_reads_as_anyhows_alternate_form() {
        let error = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(Chain(&error).to_string(), "reading the plan: disk on fire");
        assert_eq!(
            Chain(&error).to_string(),
            format!(
                "{:#}",
                anyhow::Error::new(Outer(std::io::Error::other("disk on fire")))
            )
        );
    }
}
