package io.vfiotelemetry.bench;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The processor's prepare→next computation as a Kafka Streams application, for the bench only.
 *
 * <p>Input: the events topic, Avro single-object encoding (Avro specification, "Single-object
 * encoding": 0xC3 0x01, the writer schema's 8-byte little-endian CRC-64-AVRO fingerprint, then
 * the binary-encoded record), schema schemas/vfio-event.avsc. The header is skipped and the body
 * read with a GenericDatumReader: the bench writes every record with that one schema.
 *
 * <p>Per device (host, vm, qomPath), in a persistent (RocksDB) key-value store: a state ending in
 * {@code -prepare} opens a prepare; the device's next non-prepare state closes it, {@code
 * completed} when it equals the target (the prepare state without the suffix), else {@code
 * failed}; a second prepare while one is open fails the first. Every change of non-prepare state
 * emits a dwell record for the state left. These are the records the processor's transition
 * engine publishes for the bench's workload (its timeouts, duplicates and SHUTDOWN handling do not
 * occur there and are left out). Output: schemas/vfio-transition.avsc records, single-object
 * encoded, keyed like the input.
 *
 * <p>Arguments: bootstrap applicationId eventsTopic transitionsTopic stateDir eventSchema
 * transitionSchema [streamThreads]. Prints {@code running <epoch ms>} once the application is
 * RUNNING and {@code first-record <epoch ms>} when the first event is processed; exits on SIGTERM.
 */
public final class ReferenceProcessor {
  static final String STORE = "devices";
  static final String PREPARE_SUFFIX = "-prepare";
  static final int SINGLE_OBJECT_HEADER = 10;

  public static void main(String[] args) throws Exception {
    if (args.length < 7) {
      System.err.println(
          "usage: ReferenceProcessor bootstrap applicationId eventsTopic transitionsTopic"
              + " stateDir eventSchema transitionSchema [streamThreads]");
      System.exit(64);
    }
    Schema eventSchema = parse(args[5]);
    Schema transitionSchema = parse(args[6]);

    Properties props = new Properties();
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[1]);
    props.put(StreamsConfig.STATE_DIR_CONFIG, args[4]);
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, args.length > 7 ? args[7] : "1");
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");

    StreamsBuilder builder = new StreamsBuilder();
    builder.addStateStore(
        Stores.keyValueStoreBuilder(
            Stores.persistentKeyValueStore(STORE), Serdes.String(), Serdes.ByteArray()));
    builder.stream(args[2], Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()))
        .process(() -> new TransitionProcessor(eventSchema, transitionSchema), STORE)
        .to(args[3], Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));

    KafkaStreams streams = new KafkaStreams(builder.build(), props);
    CountDownLatch stopped = new CountDownLatch(1);
    streams.setStateListener(
        (now, before) -> {
          if (now == KafkaStreams.State.RUNNING) {
            System.out.println("running " + System.currentTimeMillis());
          }
          if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
            stopped.countDown();
          }
        });
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  streams.close();
                  stopped.countDown();
                }));
    streams.start();
    stopped.await();
  }

  static Schema parse(String path) throws IOException {
    return new Schema.Parser().parse(new File(path));
  }

  /** One device's state in the store: current state and since when, the open prepare. */
  record DeviceState(String state, long sinceMicros, String prepareState, long prepareMicros) {
    byte[] encode() {
      String text =
          (state == null ? "" : state)
              + '\n'
              + sinceMicros
              + '\n'
              + (prepareState == null ? "" : prepareState)
              + '\n'
              + prepareMicros;
      return text.getBytes(StandardCharsets.UTF_8);
    }

    static DeviceState decode(byte[] bytes) {
      String[] parts = new String(bytes, StandardCharsets.UTF_8).split("\n", -1);
      return new DeviceState(
          parts[0].isEmpty() ? null : parts[0],
          Long.parseLong(parts[1]),
          parts[2].isEmpty() ? null : parts[2],
          Long.parseLong(parts[3]));
    }
  }

  static final class TransitionProcessor implements Processor<byte[], byte[], byte[], byte[]> {
    private final GenericDatumReader<GenericRecord> reader;
    private final BinaryMessageEncoder<GenericRecord> encoder;
    private final Schema transitionSchema;
    private ProcessorContext<byte[], byte[]> context;
    private KeyValueStore<String, byte[]> store;
    private BinaryDecoder decoder;
    private GenericRecord event;
    private boolean first = true;

    TransitionProcessor(Schema eventSchema, Schema transitionSchema) {
      this.reader = new GenericDatumReader<>(eventSchema);
      this.encoder = new BinaryMessageEncoder<>(GenericData.get(), transitionSchema);
      this.transitionSchema = transitionSchema;
    }

    @Override
    public void init(ProcessorContext<byte[], byte[]> context) {
      this.context = context;
      this.store = context.getStateStore(STORE);
    }

    @Override
    public void process(Record<byte[], byte[]> input) {
      if (first) {
        first = false;
        System.out.println("first-record " + System.currentTimeMillis());
      }
      byte[] frame = input.value();
      if (frame == null
          || frame.length < SINGLE_OBJECT_HEADER
          || frame[0] != (byte) 0xC3
          || frame[1] != (byte) 0x01) {
        return;
      }
      try {
        decoder =
            DecoderFactory.get()
                .binaryDecoder(
                    frame, SINGLE_OBJECT_HEADER, frame.length - SINGLE_OBJECT_HEADER, decoder);
        event = reader.read(event, decoder);
      } catch (IOException | RuntimeException e) {
        return;
      }
      if (!"VFIO_MIGRATION".equals(text(event.get("event")))) return;
      String host = text(event.get("host"));
      String vm = text(event.get("vm"));
      String qomPath = text(event.get("qomPath"));
      String deviceId = text(event.get("deviceId"));
      String next = text(event.get("deviceState"));
      if (qomPath == null || next == null) return;
      long ts = (Long) event.get("qemuTimestampMicros");
      String sessionId = text(event.get("sessionId"));

      String key = host + '/' + vm + '/' + qomPath;
      byte[] saved = store.get(key);
      DeviceState device =
          saved == null ? new DeviceState(null, 0, null, 0) : DeviceState.decode(saved);
      Out out =
          new Out(
              input,
              host,
              vm,
              qomPath,
              deviceId == null ? "" : deviceId,
              sessionId);

      String target = prepareTarget(next);
      if (target != null) {
        if (device.prepareState() != null) out.prepare(device, "failed", next, ts);
        device = new DeviceState(device.state(), device.sinceMicros(), next, ts);
      } else {
        if (device.prepareState() != null) {
          String outcome =
              next.equals(prepareTarget(device.prepareState())) ? "completed" : "failed";
          out.prepare(device, outcome, next, ts);
        }
        if (device.state() == null) {
          device = new DeviceState(next, ts, null, 0);
        } else if (!device.state().equals(next)) {
          out.dwell(device, next, ts);
          device = new DeviceState(next, ts, null, 0);
        } else {
          device = new DeviceState(device.state(), device.sinceMicros(), null, 0);
        }
      }
      store.put(key, device.encode());
    }

    /** Builds and forwards the output records of one event. */
    private final class Out {
      private final Record<byte[], byte[]> input;
      private final String host;
      private final String vm;
      private final String qomPath;
      private final String deviceId;
      private final String sessionId;

      Out(
          Record<byte[], byte[]> input,
          String host,
          String vm,
          String qomPath,
          String deviceId,
          String sessionId) {
        this.input = input;
        this.host = host;
        this.vm = vm;
        this.qomPath = qomPath;
        this.deviceId = deviceId;
        this.sessionId = sessionId;
      }

      void prepare(DeviceState device, String outcome, String next, long end) {
        GenericRecord r = base("prepare", device.prepareMicros());
        r.put("target", prepareTarget(device.prepareState()));
        r.put("prepareState", device.prepareState());
        r.put("outcome", outcome);
        r.put("next", next);
        r.put("seconds", Math.max(0, end - device.prepareMicros()) / 1e6);
        r.put("endMicros", end);
        forward(r);
      }

      void dwell(DeviceState device, String next, long end) {
        GenericRecord r = base("dwell", device.sinceMicros());
        r.put("state", device.state());
        r.put("next", next);
        r.put("seconds", Math.max(0, end - device.sinceMicros()) / 1e6);
        r.put("endMicros", end);
        forward(r);
      }

      private GenericRecord base(String type, long startMicros) {
        GenericRecord r = new GenericData.Record(transitionSchema);
        r.put("type", type);
        r.put("host", host);
        r.put("vm", vm);
        r.put("qomPath", qomPath);
        r.put("deviceId", deviceId);
        r.put("startMicros", startMicros);
        r.put("sessionId", sessionId);
        return r;
      }

      private void forward(GenericRecord r) {
        try {
          ByteBuffer buffer = encoder.encode(r);
          byte[] bytes = new byte[buffer.remaining()];
          buffer.get(bytes);
          context.forward(input.withValue(bytes));
        } catch (IOException e) {
          throw new IllegalStateException("encoding a transition failed", e);
        }
      }
    }
  }

  static String prepareTarget(String state) {
    return state.endsWith(PREPARE_SUFFIX) && state.length() > PREPARE_SUFFIX.length()
        ? state.substring(0, state.length() - PREPARE_SUFFIX.length())
        : null;
  }

  static String text(Object value) {
    return value == null ? null : value.toString();
  }
}
