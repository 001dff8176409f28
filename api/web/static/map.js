// A simple map drawn from coordinates in an SVG box (no tiles: the pages work offline; east is
// right in every language: style.css makes .map left-to-right). Shared by the order page (one
// rider's trail) and the operations dashboard (riders online).

const NS = "http://www.w3.org/2000/svg";
const WIDTH = 400, HEIGHT = 300;

// An SVG element with these attributes and children (nodes, or strings as text).
export function svgNode(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

// An empty map: <svg id=… class="map" role="img" aria-label=…>, children appended as given.
export function mapSvg(id, label, ...children) {
  const svg = svgNode("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "map", id, role: "img", "aria-label": label });
  svg.append(...children);
  return svg;
}

// The projection that fits `points` ([{lat, lon}], at least one) in the box: returns q => [x, y]
// (equirectangular around the points' middle latitude, at least ~200 m across).
export function fit(points) {
  const k = Math.cos((points.reduce((s, q) => s + q.lat, 0) / points.length) * Math.PI / 180);
  const xs = points.map((q) => q.lon * k), ys = points.map((q) => q.lat);
  const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
  const span = Math.max(maxX - minX, maxY - minY, 0.002);
  const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
  return (q) => [WIDTH / 2 + ((q.lon * k - cx) / span) * (WIDTH - 60), HEIGHT / 2 - ((q.lat - cy) / span) * (HEIGHT - 60)];
}

export function xy(q, project) { return project(q).map((v) => v.toFixed(1)); }
