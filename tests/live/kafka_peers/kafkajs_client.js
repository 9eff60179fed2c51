// kafkajs_client.js - the second Kafka client of tests/live/test_kafka.py
// (kafkajs from npm, see package.json): produces messages in batches, then
// consumes them in a consumer group.
//
// The one idea: kafkajs logs every request it sends and every response it
// reads at debug level, with the API name and correlation id; this script
// prints those as "REQ <api> <corr>" / "RESP <api> <corr>" lines on stdout,
// which is the client's own count the live test compares spans with.
//
// Usage: node kafkajs_client.js BOOTSTRAP TOPIC MESSAGES BATCH [LOGFILE]
// (LOGFILE: where those lines go instead of stdout)
const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')

const [bootstrap, topic, total, batch] = [process.argv[2], process.argv[3],
  parseInt(process.argv[4], 10), parseInt(process.argv[5], 10)]
const out = process.argv[6] ? fs.openSync(process.argv[6], 'w') : 1
const say = (line) => fs.writeSync(out, line + '\n')

const logCreator = () => ({ namespace, level, log }) => {
  const m = /^(Request|Response) (\w+)\(key: (\d+), version: (\d+)\)/.exec(log.message || '')
  if (m) {
    say(`${m[1] === 'Request' ? 'REQ' : 'RESP'} ${m[2]} ${log.correlationId} v${m[4]}`)
  } else if (level <= logLevel.WARN) {
    console.error(`${namespace}: ${log.message}`)
  }
}

async function main () {
  const kafka = new Kafka({ clientId: 'sonde-kafkajs', brokers: [bootstrap], logLevel: logLevel.DEBUG, logCreator })
  const producer = kafka.producer({ allowAutoTopicCreation: true })
  await producer.connect()
  for (let i = 0; i < total; i += batch) {
    const messages = []
    for (let j = i; j < Math.min(total, i + batch); j++) messages.push({ value: `kjs-${j}` })
    await producer.send({ topic, acks: -1, messages })
  }
  await producer.disconnect()
  say(`PRODUCED ${total}`)

  const consumer = kafka.consumer({ groupId: 'sonde-live', maxWaitTimeInMs: 200 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  let seen = 0
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumed ${seen} of ${total}`)), 30000)
    consumer.run({
      eachBatch: async ({ batch: b }) => {
        seen += b.messages.length
        if (seen >= total) {
          clearTimeout(timer)
          resolve()
        }
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  say(`CONSUMED ${seen}`)
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })
