//! Markdown to HTML for the web page, safe to show whoever wrote it: generated and human
//! pages alike can carry `<script>`, `javascript:` links or event-handler attributes.
//!
//! Raw HTML in the markdown is never passed through: it is shown as the text it is. Link
//! and image addresses keep only safe schemes (a link with another scheme becomes its
//! text). `[[wikilinks]]` become links to the documents they resolve to, and the broken
//! ones are marked. A `mermaid` code block becomes a `<pre class="mermaid">` that the page
//! draws. Everything else is pulldown-cmark's HTML, which escapes text and attributes.

use pulldown_cmark::{CodeBlockKind, CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};

/// A rendered page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The HTML, safe to put in a page as it is.
    pub html: String,
    /// Whether it holds a mermaid diagram, so the page loads the script that draws it.
    pub has_mermaid: bool,
}

/// Where a `[[wikilink]]` goes: the address of the document `target` names, or `None`
/// when no readable document does.
pub trait Links {
    /// The address of the document `target` names.
    fn href(&self, target: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Links for F {
    fn href(&self, target: &str) -> Option<String> {
        self(target)
    }
}

/// The schemes a link may use; anything else (`javascript:`, `data:`, `vbscript:`) is
/// dropped.
const LINK_SCHEMES: [&str; 4] = ["http", "https", "mailto", "ftp"];
/// The schemes an image may use.
const IMAGE_SCHEMES: [&str; 2] = ["http", "https"];

/// Renders `markdown`, with its wikilinks resolved through `links`.
pub fn render(markdown: &str, links: &impl Links) -> Rendered {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_WIKILINKS;
    let mut has_mermaid = false;
    // What each open link became, so its end tag closes the same thing.
    let mut open_links: Vec<Opened> = Vec::new();
    let mut in_mermaid = false;
    let mut in_dropped_image = 0usize;
    let events = Parser::new_ext(markdown, options).filter_map(|event| match event {
        // Raw HTML is shown as text, never interpreted.
        Event::Html(html) | Event::InlineHtml(html) => Some(Event::Text(html)),
        Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(lang)))
            if lang.split_whitespace().next() == Some("mermaid") =>
        {
            has_mermaid = true;
            in_mermaid = true;
            Some(Event::Html(CowStr::Borrowed("<pre class=\"mermaid\">")))
        }
        Event::End(TagEnd::CodeBlock) if in_mermaid => {
            in_mermaid = false;
            Some(Event::Html(CowStr::Borrowed("</pre>")))
        }
        Event::Start(Tag::Link { link_type: LinkType::WikiLink { .. }, dest_url, .. }) => {
            let target = dest_url.trim();
            match links.href(target) {
                Some(href) => {
                    open_links.push(Opened::Element("</a>"));
                    Some(Event::Html(
                        format!("<a class=\"wikilink\" href=\"{}\">", escape_attribute(&href))
                            .into(),
                    ))
                }
                None => {
                    open_links.push(Opened::Element("</span>"));
                    Some(Event::Html(
                        format!(
                            "<span class=\"wikilink broken\" title=\"No document is called {}\">",
                            escape_attribute(target)
                        )
                        .into(),
                    ))
                }
            }
        }
        Event::Start(Tag::Link { link_type, dest_url, title, id }) => {
            if allowed(&dest_url, &LINK_SCHEMES) {
                open_links.push(Opened::Link);
                Some(Event::Start(Tag::Link { link_type, dest_url, title, id }))
            } else {
                open_links.push(Opened::Nothing);
                None
            }
        }
        Event::End(TagEnd::Link) => match open_links.pop() {
            Some(Opened::Element(close)) => Some(Event::Html(CowStr::Borrowed(close))),
            Some(Opened::Nothing) => None,
            Some(Opened::Link) | None => Some(Event::End(TagEnd::Link)),
        },
        Event::Start(Tag::Image { link_type, dest_url, title, id }) => {
            if in_dropped_image == 0 && allowed(&dest_url, &IMAGE_SCHEMES) {
                Some(Event::Start(Tag::Image { link_type, dest_url, title, id }))
            } else {
                // The alt text inside is kept, as text.
                in_dropped_image += 1;
                None
            }
        }
        // Footnote names become element ids: prefixed, so `[^editor]` cannot take the id
        // of an element of the page.
        Event::FootnoteReference(name) => {
            Some(Event::FootnoteReference(format!("fn-{name}").into()))
        }
        Event::Start(Tag::FootnoteDefinition(name)) => {
            Some(Event::Start(Tag::FootnoteDefinition(format!("fn-{name}").into())))
        }
        Event::End(TagEnd::Image) if in_dropped_image > 0 => {
            in_dropped_image -= 1;
            None
        }
        other => Some(other),
    });
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    Rendered { html, has_mermaid }
}

/// What a link's start event became.
enum Opened {
    /// Left as pulldown-cmark's link.
    Link,
    /// Dropped: only its text is shown.
    Nothing,
    /// An element of ours, closed by this tag.
    Element(&'static str),
}

/// Whether `url` is relative, or uses one of `schemes`. Browsers ignore ASCII whitespace
/// and control characters inside a scheme (`java\tscript:`), so they are ignored here too.
fn allowed(url: &str, schemes: &[&str]) -> bool {
    let squeezed: String =
        url.chars().filter(|c| !c.is_ascii_whitespace() && !c.is_control()).collect();
    let Some(colon) = squeezed.find(':') else {
        return true;
    };
    let before = &squeezed[..colon];
    if before.contains(['/', '?', '#']) {
        // A colon after the first path, query or fragment character: a relative address.
        return true;
    }
    let scheme = before.to_ascii_lowercase();
    schemes.contains(&scheme.as_str())
}

/// `text` escaped for a double-quoted HTML attribute.
pub fn escape_attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// A search snippet (the store marks hits with `<mark>`) as safe HTML: everything is
/// escaped, then the store's marks alone are put back.
pub fn snippet(text: &str) -> String {
    escape_attribute(text).replace("&lt;mark&gt;", "<mark>").replace("&lt;/mark&gt;", "</mark>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(markdown: &str) -> String {
        let links = |target: &str| (target == "Known Page").then(|| "/d/doc-known".to_string());
        render(markdown, &links).html
    }

    #[test]
    fn raw_html_is_shown_as_text() {
        let out = html("Hi <script>alert(1)</script>\n\n<div onclick=\"x()\">a</div>\n");
        assert!(!out.contains("<script"), "{out}");
        assert!(!out.contains("<div"), "{out}");
        assert!(out.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{out}");
        assert!(out.contains("&lt;div onclick=\"x()\"&gt;a&lt;/div&gt;"), "{out}");
    }

    #[test]
    fn links_keep_only_safe_schemes() {
        for bad in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "java\tscript:alert(1)",
            "vbscript:msgbox(1)",
            "data:text/html,<script>alert(1)</script>",
        ] {
            let out = html(&format!("[click](<{bad}>)"));
            assert!(!out.contains("<a"), "{bad} kept a link: {out}");
            assert!(out.contains("click"), "{out}");
        }
        let out =
            html("[a](https://example.com/x?y=1) [b](../other#part) [c](mailto:a@b.c) [d](a/b:c)");
        assert_eq!(out.matches("<a href=").count(), 4, "{out}");
        let out = html("![x](javascript:alert(1)) ![y](https://example.com/y.png)");
        assert!(!out.contains("javascript"), "{out}");
        assert!(out.contains("<img src=\"https://example.com/y.png\" alt=\"y\""), "{out}");
    }

    #[test]
    fn attributes_cannot_be_broken_out_of() {
        let out = html("[a](https://e.com/\"onmouseover=\"alert(1))");
        assert!(!out.contains("\"onmouseover"), "{out}");
        let out = html("[[Bad\" onclick=\"alert(1)]]");
        assert!(
            out.contains("title=\"No document is called Bad&quot; onclick=&quot;alert(1)\">"),
            "{out}"
        );
        assert!(
            !out.contains("<span class=\"wikilink broken\" title=\"No document is called Bad\""),
            "{out}"
        );
    }

    #[test]
    fn wikilinks_link_their_documents_and_broken_ones_are_marked() {
        let out = html("See [[Known Page]], [[Known Page|the page]] and [[Missing]].");
        assert!(
            out.contains("<a class=\"wikilink\" href=\"/d/doc-known\">Known Page</a>"),
            "{out}"
        );
        assert!(out.contains("<a class=\"wikilink\" href=\"/d/doc-known\">the page</a>"), "{out}");
        assert!(
            out.contains("<span class=\"wikilink broken\" title=\"No document is called Missing\">Missing</span>"),
            "{out}"
        );
    }

    #[test]
    fn tables_code_and_mermaid() {
        let rendered = render(
            "| a | b |\n|---|---|\n| 1 | 2 |\n\n```rust\nfn x() {}\n```\n\n```mermaid\ngraph TD; A-->B;\n```\n",
            &|_: &str| None,
        );
        assert!(rendered.html.contains("<table>"), "{}", rendered.html);
        assert!(rendered.html.contains("<code class=\"language-rust\">"), "{}", rendered.html);
        assert!(
            rendered.html.contains("<pre class=\"mermaid\">graph TD; A--&gt;B;\n</pre>"),
            "{}",
            rendered.html
        );
        assert!(rendered.has_mermaid);
        assert!(!render("no diagram", &|_: &str| None).has_mermaid);
    }

    #[test]
    fn footnote_ids_cannot_take_the_page_s_own() {
        let out = html("A claim.[^editor]\n\n[^editor]: The source.\n");
        assert!(out.contains("id=\"fn-editor\"") && out.contains("href=\"#fn-editor\""), "{out}");
        assert!(!out.contains("id=\"editor\""), "{out}");
    }

    #[test]
    fn snippets_keep_only_their_marks() {
        assert_eq!(
            snippet("a <mark>hit</mark> <img src=x onerror=alert(1)>"),
            "a <mark>hit</mark> &lt;img src=x onerror=alert(1)&gt;"
        );
    }
}
