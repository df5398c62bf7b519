import { MemoryStorage } from '../src/index.js';
import { storageConformance } from './support/storage-conformance.js';

storageConformance('memory', async () => new MemoryStorage());
