//! passthru.toml(5), converted from docs/configuration.md at build time: the
//! page and the document are one text, so they cannot disagree.
//!
//! The converter knows the Markdown that document uses: `##`/`###`
//! headings, paragraphs, `-` and `1.` lists, fenced code, pipe tables (the
//! first column becomes the tag of a `.TP` entry, the others follow under
//! their header), and inline code, bold, italics and links.

/// The Markdown the page is made from.
const SOURCE: &str = include_str!("../../docs/configuration.md");

/// The whole page, roff `man` macros.
pub(crate) fn render(version: &str) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        ".TH PASSTHRU.TOML 5 \"\" \"passthru {version}\" \"File Formats\"\n"
    ));
    out.push_str(".SH NAME\npassthru.toml \\- configuration file of passthru(1)\n");
    out.push_str(".SH SYNOPSIS\n/etc/passthru/passthru.toml\n");
    out.push_str(".SH DESCRIPTION\n");
    convert(SOURCE, &mut out);
    out.push_str(".SH FILES\n.TP\n.I /etc/passthru/passthru.toml\nthe configuration the passthru.service unit runs with (a commented example on a fresh install)\n");
    out.push_str(".SH \"SEE ALSO\"\npassthru(1), passthru\\-check(1), passthru\\-run(1), /usr/share/doc/passthru/operations.md\n");
    out
}

/// Converts the Markdown body; the `#` title is dropped (NAME says it).
fn convert(markdown: &str, out: &mut String) {
    let mut lines = markdown.lines().peekable();
    let mut paragraph_open = false;
    while let Some(line) = lines.next() {
        if line.starts_with("```") {
            out.push_str(".PP\n.nf\n.RS 2\n");
            for code in lines.by_ref() {
                if code.starts_with("```") {
                    break;
                }
                out.push_str(&escape_line(&code.replace('\\', "\\e")));
                out.push('\n');
            }
            out.push_str(".RE\n.fi\n");
            paragraph_open = false;
        } else if let Some(title) = line.strip_prefix("### ") {
            out.push_str(&format!(".SS \"{}\"\n", quoted(&inline(title))));
            paragraph_open = false;
        } else if let Some(title) = line.strip_prefix("## ") {
            out.push_str(&format!(".SH \"{}\"\n", quoted(&inline(title))));
            paragraph_open = false;
        } else if line.starts_with("# ") {
            continue;
        } else if line.starts_with('|') {
            let header = cells(line);
            // The |---| line.
            lines.next_if(|next| next.starts_with("|-") || next.starts_with("| -"));
            while let Some(row) = lines.next_if(|next| next.starts_with('|')) {
                table_row(&header, &cells(row), out);
            }
            out.push_str(".PP\n");
            paragraph_open = true;
        } else if line.trim().is_empty() {
            paragraph_open = false;
        } else if let Some(item) = line.strip_prefix("- ") {
            out.push_str(".IP \\(bu 2\n");
            out.push_str(&escape_line(&inline(item)));
            out.push('\n');
            paragraph_open = true;
        } else if let Some((number, item)) = numbered(line) {
            out.push_str(&format!(".IP {number}. 4\n"));
            out.push_str(&escape_line(&inline(item)));
            out.push('\n');
            paragraph_open = true;
        } else {
            if !paragraph_open {
                out.push_str(".PP\n");
                paragraph_open = true;
            }
            out.push_str(&escape_line(&inline(line.trim_start())));
            out.push('\n');
        }
    }
}

/// `1. text` → `("1", "text")`.
fn numbered(line: &str) -> Option<(&str, &str)> {
    let (number, rest) = line.split_once(". ")?;
    (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())).then_some((number, rest))
}

/// The cells of a `| a | b |` row; `\|` is a literal bar.
fn cells(row: &str) -> Vec<String> {
    let row = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = vec![String::new()];
    let mut chars = row.chars().peekable();
    let mut in_code = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                if let Some(cell) = cells.last_mut() {
                    cell.push('|');
                }
            }
            '|' if !in_code => cells.push(String::new()),
            _ => {
                if c == '`' {
                    in_code = !in_code;
                }
                if let Some(cell) = cells.last_mut() {
                    cell.push(c);
                }
            }
        }
    }
    cells.iter().map(|cell| cell.trim().to_owned()).collect()
}

/// One table row as a `.TP` entry: the first cell is the tag, then each
/// other cell under its header, the last (the meaning) as plain text.
fn table_row(header: &[String], row: &[String], out: &mut String) {
    let Some((tag, rest)) = row.split_first() else {
        return;
    };
    out.push_str(".TP\n");
    out.push_str(&escape_line(&inline(tag)));
    out.push('\n');
    let last = rest.len().saturating_sub(1);
    for (index, cell) in rest.iter().enumerate() {
        if index > 0 {
            out.push_str(".br\n");
        }
        let text = if index == last && rest.len() > 1 {
            inline(cell)
        } else {
            let name = header.get(index + 1).map_or("", String::as_str);
            format!("{}: {}", inline(name), inline(cell))
        };
        out.push_str(&escape_line(&text));
        out.push('\n');
    }
}

/// Inline Markdown to roff font escapes: `code` and **bold** bold,
/// *emphasis* italic, [text](target) just the text. Backslashes are
/// escaped first, so the result only needs [`escape_line`].
fn inline(text: &str) -> String {
    let text = text.replace('\\', "\\e");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(c) = rest.chars().next() {
        if let Some(code) = rest.strip_prefix('`')
            && let Some(end) = code.find('`')
        {
            out.push_str("\\fB");
            out.push_str(code.get(..end).unwrap_or_default());
            out.push_str("\\fR");
            rest = code.get(end + 1..).unwrap_or_default();
            continue;
        }
        if let Some(bold) = rest.strip_prefix("**")
            && let Some(end) = bold.find("**")
        {
            out.push_str("\\fB");
            out.push_str(&inline_plain(bold.get(..end).unwrap_or_default()));
            out.push_str("\\fR");
            rest = bold.get(end + 2..).unwrap_or_default();
            continue;
        }
        if let Some(emphasis) = rest.strip_prefix('*') {
            let end = emphasis
                .find('*')
                .filter(|&end| end > 0 && !emphasis.starts_with(' '));
            if let Some(end) = end {
                out.push_str("\\fI");
                out.push_str(emphasis.get(..end).unwrap_or_default());
                out.push_str("\\fR");
                rest = emphasis.get(end + 1..).unwrap_or_default();
                continue;
            }
        }
        if let Some(link) = rest.strip_prefix('[')
            && let Some((label, after)) = link.split_once("](")
            && let Some(close) = after.find(')')
        {
            out.push_str(&inline(label));
            rest = after.get(close + 1..).unwrap_or_default();
            continue;
        }
        out.push(c);
        rest = rest.get(c.len_utf8()..).unwrap_or_default();
    }
    out
}

/// Inline markup inside bold: only code spans, whose backticks go.
fn inline_plain(text: &str) -> String {
    text.replace('`', "")
}

/// A line roff will not read as a request: a leading `.` or `'` is
/// protected with `\&`.
fn escape_line(line: &str) -> String {
    if line.starts_with('.') || line.starts_with('\'') {
        format!("\\&{line}")
    } else {
        line.to_owned()
    }
}

/// Text inside a `"…"` macro argument: a `"` becomes `\(dq`.
fn quoted(text: &str) -> String {
    text.replace('"', "\\(dq")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_the_example_configuration_is_on_the_page() {
        let page = render("0");
        let example = include_str!("../../proxy/examples/passthru.toml");
        let keys: Vec<&str> = example
            .lines()
            .map(|line| line.trim_start_matches('#').trim_start())
            .filter_map(|line| line.split_once(" = ").map(|(key, _)| key.trim()))
            .filter(|key| {
                !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            })
            .collect();
        assert!(keys.len() > 10, "{keys:?}");
        for key in keys {
            let escaped = key.replace('-', "\\-");
            assert!(
                page.contains(&format!("\\fB{escaped}\\fR"))
                    || page.contains(&format!("\\fB{key}\\fR")),
                "{key} is not described on passthru.toml(5)"
            );
        }
    }

    #[test]
    fn markdown_constructs_become_man_macros() {
        let mut out = String::new();
        convert(
            "# T\n\n## `[admin]`\n\ntext with `code`, **bold** and [a link](x.md).\n.dot\n\n| key | type | meaning |\n|---|---|---|\n| `bind` | `a` \\| `b` | where |\n\n```toml\n.x = \"\\\\\"\n```\n- item\n1. first\n",
            &mut out,
        );
        assert_eq!(
            out,
            ".SH \"\\fB[admin]\\fR\"\n.PP\ntext with \\fBcode\\fR, \\fBbold\\fR and a link.\n\\&.dot\n.TP\n\\fBbind\\fR\ntype: \\fBa\\fR | \\fBb\\fR\n.br\nwhere\n.PP\n.PP\n.nf\n.RS 2\n\\&.x = \"\\e\\e\"\n.RE\n.fi\n.IP \\(bu 2\nitem\n.IP 1. 4\nfirst\n"
        );
    }
}
