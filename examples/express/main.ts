// What the consumer loads: `huey-consumer examples/express/main.huey`.
// Importing the tasks fills the registry.
export { huey } from './config.js';
import './tasks.js';
