//! The progress lines of the long commands (`hadr check`, `hadr certify`, `hadr trace
//! generate`) on standard error, drawn by `indicatif`: one line redrawn in place.
//!
//! indicatif draws nothing when standard error is not a terminal. There, in a CI log, a
//! command that must still show progress prints plain lines of its own at its own rate, and
//! asks [`Line::is_terminal`] whether to.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::borrow::Cow;

/// A progress line on standard error.
pub struct Line {
    bar: ProgressBar,
    terminal: bool,
}

impl Line {
    /// A line drawn with `template` (indicatif's syntax: `{msg}`, `{pos}`, `{len}`, …), counting
    /// to `len` if given; hidden everywhere when `shown` is false (`--quiet`, `--json`).
    pub fn new(template: &str, len: Option<u64>, shown: bool) -> Self {
        let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
        let terminal = !bar.is_hidden();
        // The templates are constants of the commands, every one tested below.
        bar.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        if !shown {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        Line { bar, terminal }
    }

    /// Whether standard error is a terminal (where the line is drawn, if shown); when it is
    /// not, nothing is drawn.
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// Whether the line is drawn: standard error is a terminal and the line is shown.
    pub fn is_drawn(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// Shows `message` at `pos`. The last position is always drawn, and stays until
    /// [`Line::clear`]: indicatif draws at most 20 times a second and skips what comes faster,
    /// and whatever the command does after its last step would be shown as not done.
    pub fn set(&self, pos: u64, message: impl Into<Cow<'static, str>>) {
        self.bar.set_position(pos);
        self.bar.set_message(message);
        if self.bar.length() == Some(pos) {
            self.bar.finish();
        }
    }

    /// Shows `message`.
    pub fn set_message(&self, message: impl Into<Cow<'static, str>>) {
        self.bar.set_message(message);
    }

    /// Draws the line a last time and leaves it on the screen.
    pub fn finish(&self) {
        self.bar.finish();
    }

    /// Erases the line.
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_of_the_commands_is_valid() {
        for template in [
            crate::check_cmd::PROGRESS,
            crate::certify_cmd::PROGRESS,
            crate::trace_cmd::PROGRESS,
        ] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }

    #[test]
    fn a_hidden_line_is_never_drawn() {
        let p = Line::new("{msg}", None, false);
        assert!(!p.is_drawn());
        p.set_message("nothing to see");
        p.finish();
    }
}
