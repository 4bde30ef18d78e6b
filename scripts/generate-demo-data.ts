/**
 * Writes examples/sales/data/orders.csv: two years of orders for a small outdoor-gear shop, made with a
 * seeded generator so the file is the same on every machine. Run: node scripts/generate-demo-data.ts
 */
import { writeFileSync } from 'node:fs';

let seed = 20240101;
function random(): number {
  // mulberry32
  seed |= 0;
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

const products = [
  { product: 'Trail Runner 2', category: 'Footwear', price: 129.0 },
  { product: 'Summit Boot', category: 'Footwear', price: 189.5 },
  { product: 'Rain Shell', category: 'Apparel', price: 149.99 },
  { product: 'Merino Base Layer', category: 'Apparel', price: 74.25 },
  { product: 'Down Jacket', category: 'Apparel', price: 229.0 },
  { product: 'Daypack 24L', category: 'Packs', price: 89.9 },
  { product: 'Expedition Pack 65L', category: 'Packs', price: 279.0 },
  { product: 'Headlamp 400', category: 'Gear', price: 39.95 },
  { product: 'Trekking Poles', category: 'Gear', price: 99.0 },
  { product: 'Water Filter', category: 'Gear', price: 44.5 },
  { product: 'Two-Person Tent', category: 'Shelter', price: 349.0 },
  { product: 'Sleeping Bag -5C', category: 'Shelter', price: 259.0 },
] as const;
const regions = ['EMEA', 'AMER', 'APAC'] as const;
const channels = ['web', 'store', 'partner'] as const;

const lines = [
  'order_id,order_date,region,channel,customer_id,product,category,quantity,unit_price,discount',
];
let id = 100_000;
const start = Date.UTC(2024, 0, 1);
for (let day = 0; day < 731; day++) {
  const date = new Date(start + day * 86_400_000);
  const month = date.getUTCMonth();
  const seasonal =
    1 + 0.45 * Math.sin(((month - 2) / 12) * 2 * Math.PI) + (month === 10 || month === 11 ? 0.6 : 0);
  const growth = 1 + day / 900;
  const orders = Math.max(0, Math.round((2 + random() * 3) * seasonal * growth));
  for (let n = 0; n < orders; n++) {
    const p = pick(products);
    const quantity = 1 + Math.floor(random() * random() * 4);
    const discount = random() < 0.18 ? pick([0.05, 0.1, 0.15, 0.2]) : 0;
    lines.push(
      [
        ++id,
        date.toISOString().slice(0, 10),
        pick(regions),
        pick(channels),
        `C${1000 + Math.floor(random() * 900)}`,
        p.product,
        p.category,
        quantity,
        p.price.toFixed(2),
        discount.toFixed(2),
      ].join(','),
    );
  }
}
writeFileSync(new URL('../examples/sales/data/orders.csv', import.meta.url), `${lines.join('\n')}\n`);
console.log(`wrote ${lines.length - 1} orders`);
