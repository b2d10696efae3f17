// `npm run migrate`: applies pending SQL migrations to DATABASE_URL (see bin/stack/migrations.ts).
import { loadConfig } from '../lib/config.ts';
import { migrate, MigrationError } from './stack/migrations.ts';

const { DATABASE_URL } = loadConfig();
try {
  const { applied, alreadyApplied } = await migrate(DATABASE_URL);
  for (const name of applied) console.log(`applied ${name}`);
  console.log(`${applied.length} applied, ${alreadyApplied.length} already applied`);
} catch (err) {
  console.error(err instanceof MigrationError ? `migrate: ${err.message}` : err);
  process.exit(1);
}
