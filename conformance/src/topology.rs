//! A small SVG picture of a demo scene: hosts as boxes, containers and
//! bridges inside them, links between interfaces, addresses as labels.

use std::fmt::Write;

/// A box in the picture: a host namespace or a container.
#[derive(Debug, Clone)]
pub struct Node {
    /// Title, e.g. `container c1`.
    pub title: String,
    /// Lines under the title: interfaces and addresses.
    pub lines: Vec<String>,
    /// Index of the enclosing host box, if any.
    pub inside: Option<usize>,
}

/// A scene's topology: nodes and the links between them.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// Boxes.
    pub nodes: Vec<Node>,
    /// Lines between two boxes, with a label.
    pub links: Vec<(usize, usize, String)>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

impl Topology {
    /// Adds a box and returns its index.
    pub fn node(&mut self, title: &str, lines: Vec<String>, inside: Option<usize>) -> usize {
        self.nodes.push(Node { title: title.into(), lines, inside });
        self.nodes.len() - 1
    }

    /// Connects two boxes.
    pub fn link(&mut self, a: usize, b: usize, label: &str) {
        self.links.push((a, b, label.into()));
    }

    /// Renders the picture: top-level boxes in a row, their children in a
    /// row inside them.
    pub fn to_svg(&self, heading: &str) -> String {
        const W: i32 = 230;
        const GAP: i32 = 100;
        const LINE: i32 = 16;
        let tops: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].inside.is_none()).collect();
        let mut pos = vec![(0, 0, 0, 0); self.nodes.len()];
        let mut x = 20;
        let mut max_h = 0;
        for &t in &tops {
            let kids: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].inside == Some(t)).collect();
            let own_h = 30 + LINE * self.nodes[t].lines.len() as i32;
            let kid_h = kids.iter().map(|&k| 30 + LINE * self.nodes[k].lines.len() as i32).max().unwrap_or(0);
            let w = (W * kids.len() as i32 + GAP * (kids.len() as i32 - 1) + 40).max(W);
            let h = own_h + if kids.is_empty() { 0 } else { kid_h + 20 };
            pos[t] = (x, 50, w, h);
            for (j, &k) in kids.iter().enumerate() {
                pos[k] = (x + 20 + j as i32 * (W + GAP), 50 + own_h, W, 30 + LINE * self.nodes[k].lines.len() as i32);
            }
            x += w + GAP;
            max_h = max_h.max(h);
        }
        let (width, height) = (x.max(400), max_h + 90);
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(s, r#"<text x="20" y="28" font-size="16" font-weight="bold">{}</text>"#, esc(heading));
        for (i, n) in self.nodes.iter().enumerate() {
            let (x, y, w, h) = pos[i];
            let fill = if n.inside.is_none() { "#eef3fb" } else { "#fdf6e3" };
            let _ = writeln!(
                s,
                r##"<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="{fill}" stroke="#345" fill-opacity="0.95"/>"##
            );
            let _ = writeln!(s, r#"<text x="{}" y="{}" font-weight="bold">{}</text>"#, x + 8, y + 18, esc(&n.title));
            for (j, l) in n.lines.iter().enumerate() {
                let _ = writeln!(s, r#"<text x="{}" y="{}">{}</text>"#, x + 8, y + 36 + j as i32 * LINE, esc(l));
            }
        }
        for (a, b, label) in &self.links {
            let (ax, ay, aw, ah) = pos[*a];
            let (bx, by, bw, bh) = pos[*b];
            // Side by side: edge to edge; otherwise centre to centre.
            let (x1, y1, x2, y2) = if ax + aw <= bx {
                (ax + aw, ay + ah / 2, bx, by + bh / 2)
            } else if bx + bw <= ax {
                (bx + bw, by + bh / 2, ax, ay + ah / 2)
            } else {
                (ax + aw / 2, ay + ah, bx + bw / 2, by)
            };
            let _ = writeln!(s, r##"<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#c33" stroke-width="3"/>"##);
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{}" fill="#c33" text-anchor="middle" font-size="11">{}</text>"##,
                (x1 + x2) / 2,
                (y1 + y2) / 2 - 6,
                esc(label)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_nested_boxes_and_escapes() {
        let mut t = Topology::default();
        let h = t.node("host <1>", vec!["br0 10.0.0.1/24".into()], None);
        let c = t.node("container", vec!["eth0 10.0.0.2/24".into()], Some(h));
        t.link(h, c, "veth");
        let svg = t.to_svg("bridge");
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("host &lt;1&gt;"));
        assert!(svg.contains("10.0.0.2/24"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
