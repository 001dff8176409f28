// How auction publications read (the same rule as auctions/wire.py `events_of()`): a single
// event, or a `batch` whose bids are compact rows [seq, price, leader, bid_count, flags, ends_at?].
const EXTENDED = 1, RESERVE_MET = 2, BUY_NOW = 4;

export function eventsOf(data) {
  if (data.type !== "batch") return [data];
  const out = [];
  let ends = data.ends_at;
  for (const item of data.events) {
    if (Array.isArray(item)) {
      const [seq, price, who, bidCount, flags] = item;
      if (item.length > 5) ends = item[5];
      const [uid, name] = data.people[who];
      out.push({
        auction_id: data.auction_id, seq, type: "bid", price, amount: price, leader: name,
        leader_id: uid, ends_at: ends, extended: Boolean(flags & EXTENDED),
        reserve_met: Boolean(flags & RESERVE_MET), buy_now_available: Boolean(flags & BUY_NOW),
        bid_count: bidCount,
      });
    } else {
      out.push({ auction_id: data.auction_id, ...item });
    }
  }
  return out;
}

// The default increment table (auctions/model.py DEFAULT_STEPS). An auction with its own table
// may need more: a refused bid reloads the auction's `min_next_bid` from the server.
const STEPS = [[0, 100], [3000, 200], [5000, 300], [10000, 500], [30000, 1000], [100000, 2000], [200000, 5000]];

export function nextIncrement(price) {
  let inc = STEPS[0][1];
  for (const [from, step] of STEPS) if (price >= from) inc = step;
  return inc;
}
