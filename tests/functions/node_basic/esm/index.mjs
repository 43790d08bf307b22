// Node.js ES module test function (handler: index.handler).
import { randomUUID } from 'node:crypto';
import { platform } from 'node:os';

const initPid = process.pid;
const envId = randomUUID().replace(/-/g, '');
let count = 0;

export const handler = async (event, context) => {
  count += 1;
  return {
    module: 'esm',
    platform: platform(),
    event,
    count,
    envId,
    pid: initPid,
    awsRequestId: context.awsRequestId,
    functionName: context.functionName,
  };
};
