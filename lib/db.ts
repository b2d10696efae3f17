// Database access. Prisma (with the pg driver adapter) for everything; a bare pg client only for
// LISTEN, which Prisma does not offer (see lib/events.ts).
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './generated/prisma/client.ts';
import { loadConfig } from './config.ts';

let prisma: PrismaClient | undefined;

export function db(): PrismaClient {
  if (!prisma) {
    const adapter = new PrismaPg({ connectionString: loadConfig().DATABASE_URL, max: 20 });
    prisma = new PrismaClient({ adapter });
  }
  return prisma;
}

export async function closeDb(): Promise<void> {
  await prisma?.$disconnect();
  prisma = undefined;
}

export type { PrismaClient };
export { Prisma } from './generated/prisma/client.ts';
