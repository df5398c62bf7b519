// Enqueue a few tasks and print their results (a consumer must be running).
import { huey } from './main.js';
import { add, countBeans, flaky, slowAdd } from './tasks.js';

const results = {
  'add(1, 2)': add(1, 2),
  'countBeans(100)': countBeans(100),
  'slowAdd(2, 3, 1)': slowAdd(2, 3, 1),
  "flaky('demo')": flaky(`demo-${Date.now()}`),
};
for (const [call, result] of Object.entries(results)) {
  console.log(`${call} = ${JSON.stringify(await result.get({ blocking: true, timeout: 30 }))}`);
}
await huey.close();
