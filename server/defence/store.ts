// The defence's state: its SQLite tables and their SQL live with the other stores (server/store/sqlite-defence.ts).
export { openDefenceStore, type ReplicaRow, type UsefulnessRow, type VolunteerUsefulness } from '../store/sqlite-defence.ts';
export type { SqliteDefence as DefenceStore } from '../store/sqlite-defence.ts';
