// Node.js ES module test function (handler: index.handler).
import { platform } from 'node:os';

const initPid = process.pid;
let count = 0;

export const handler = async (event, context) => {
  count += 1;
  return {
    module: 'esm',
    platform: platform(),
    event,
    count,
    pid: initPid,
    awsRequestId: context.awsRequestId,
    functionName: context.functionName,
  };
};
