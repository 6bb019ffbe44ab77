package io.wmsgate.keycloak;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Sends event documents to the alerting service from a bounded queue on its own thread.
 *
 * <p>{@link #offer(String)} never blocks: a login must never wait for, or fail because of, the
 * receiver. Events are sent one at a time in order; a failed send (connection error, timeout or
 * a non-2xx answer) is retried with exponential backoff (from 200 ms up to {@code maxBackoff})
 * until it succeeds or the sender is closed. When the queue is full new events are dropped and
 * counted; the alerting service backfills them from Keycloak's event REST API, so none is lost
 * for good.
 */
public final class EventSender implements AutoCloseable {

    private static final Logger LOG = Logger.getLogger(EventSender.class.getName());
    private static final Duration FIRST_BACKOFF = Duration.ofMillis(200);

    private final URI url;
    private final EventSigner signer;
    private final HttpClient client;
    private final Duration timeout;
    private final Duration maxBackoff;
    private final BlockingQueue<String> queue;
    private final AtomicLong dropped = new AtomicLong();
    private final AtomicLong delivered = new AtomicLong();
    private final AtomicLong rejected = new AtomicLong();
    private final Thread worker;
    private volatile boolean closing;

    /**
     * @param url the alerting service's event endpoint
     * @param signer signs each body
     * @param capacity how many events may wait (at least 1)
     * @param timeout time limit of one send
     * @param maxBackoff longest wait between retries
     */
    public EventSender(URI url, EventSigner signer, int capacity, Duration timeout, Duration maxBackoff) {
        this.url = url;
        this.signer = signer;
        this.timeout = timeout;
        this.maxBackoff = maxBackoff;
        this.queue = new ArrayBlockingQueue<>(Math.max(1, capacity));
        this.client = HttpClient.newBuilder().connectTimeout(timeout).build();
        this.worker = new Thread(this::run, "wmsgate-event-sender");
        this.worker.setDaemon(true);
        this.worker.start();
    }

    /**
     * Queue one event document (JSON text) without waiting.
     *
     * @param json the document
     * @return false when the queue was full and the event was dropped
     */
    public boolean offer(String json) {
        if (closing || !queue.offer(json)) {
            dropped.incrementAndGet();
            return false;
        }
        return true;
    }

    /** @return events dropped because the queue was full (or the sender closed) */
    public long dropped() {
        return dropped.get();
    }

    /** @return events the receiver accepted */
    public long delivered() {
        return delivered.get();
    }

    /** @return events the receiver refused for good (malformed; skipped, see {@link #refusedForGood}) */
    public long rejected() {
        return rejected.get();
    }

    /** @return events waiting to be sent */
    public int pending() {
        return queue.size();
    }

    private void run() {
        while (!closing || !queue.isEmpty()) {
            String next;
            try {
                next = queue.poll(200, TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                return;
            }
            if (next != null && !deliver(next)) {
                return;
            }
        }
    }

    /**
     * Whether the receiver refused this event for good: a 4xx other than 401/403 (a secret
     * mismatch an operator fixes), 408 and 429. Retrying such an event would hold up every
     * event behind it; the alerting service still reads it from Keycloak's event store.
     */
    static boolean refusedForGood(int status) {
        return status / 100 == 4 && status != 401 && status != 403 && status != 408 && status != 429;
    }

    /** Send until accepted; false when interrupted or closed while the receiver is down. */
    private boolean deliver(String json) {
        byte[] body = json.getBytes(StandardCharsets.UTF_8);
        HttpRequest request = HttpRequest.newBuilder(url)
                .timeout(timeout)
                .header("Content-Type", "application/json; charset=utf-8")
                .header(EventSigner.HEADER, signer.sign(body))
                .POST(HttpRequest.BodyPublishers.ofByteArray(body))
                .build();
        Duration backoff = FIRST_BACKOFF;
        while (true) {
            try {
                HttpResponse<Void> response = client.send(request, HttpResponse.BodyHandlers.discarding());
                if (response.statusCode() / 100 == 2) {
                    delivered.incrementAndGet();
                    return true;
                }
                if (refusedForGood(response.statusCode())) {
                    rejected.incrementAndGet();
                    LOG.log(Level.SEVERE, "alerting service refused an event for good ({0}); skipped",
                            response.statusCode());
                    return true;
                }
                LOG.log(Level.WARNING, "alerting service answered {0}; will retry", response.statusCode());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            } catch (Exception e) {
                LOG.log(Level.FINE, "alerting service unreachable; will retry", e);
            }
            if (closing) {
                return false;
            }
            try {
                Thread.sleep(backoff.toMillis());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
            backoff = backoff.multipliedBy(2).compareTo(maxBackoff) > 0 ? maxBackoff : backoff.multipliedBy(2);
        }
    }

    /** Stop taking events, give the queue a moment to drain, then stop the worker. */
    @Override
    public void close() {
        closing = true;
        try {
            worker.join(2000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        worker.interrupt();
    }
}
