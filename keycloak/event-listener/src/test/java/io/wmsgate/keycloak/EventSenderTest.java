package io.wmsgate.keycloak;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

class EventSenderTest {

    /** A receiver on 127.0.0.1 that records body and signature of each event. */
    static final class Receiver implements AutoCloseable {
        final List<String> bodies = new CopyOnWriteArrayList<>();
        final List<String> signatures = new CopyOnWriteArrayList<>();
        final HttpServer server;

        Receiver(int port) throws IOException {
            server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 0);
            server.createContext("/events", exchange -> {
                String body;
                try (InputStream in = exchange.getRequestBody()) {
                    body = new String(in.readAllBytes(), StandardCharsets.UTF_8);
                }
                bodies.add(body);
                signatures.add(exchange.getRequestHeaders().getFirst(EventSigner.HEADER));
                exchange.sendResponseHeaders(body.contains("malformed") ? 400 : 202, -1);
                exchange.close();
            });
            server.start();
        }

        @Override
        public void close() {
            server.stop(0);
        }
    }

    static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0, 1, java.net.InetAddress.getByName("127.0.0.1"))) {
            return socket.getLocalPort();
        }
    }

    static void waitFor(java.util.function.BooleanSupplier condition, Duration limit) throws InterruptedException {
        long deadline = System.nanoTime() + limit.toNanos();
        while (!condition.getAsBoolean() && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
    }

    @Test
    void eventsArriveInOrderWithAValidSignature() throws Exception {
        int port = freePort();
        EventSigner signer = new EventSigner("s3cret");
        try (Receiver receiver = new Receiver(port);
             EventSender sender = new EventSender(URI.create("http://127.0.0.1:" + port + "/events"), signer, 100,
                     Duration.ofSeconds(2), Duration.ofMillis(500))) {
            for (int i = 0; i < 20; i++) {
                assertTrue(sender.offer("{\"n\":" + i + "}"));
            }
            waitFor(() -> receiver.bodies.size() == 20, Duration.ofSeconds(10));
            assertEquals(20, receiver.bodies.size());
            for (int i = 0; i < 20; i++) {
                String body = receiver.bodies.get(i);
                assertEquals("{\"n\":" + i + "}", body);
                assertEquals(signer.sign(body.getBytes(StandardCharsets.UTF_8)), receiver.signatures.get(i));
            }
        }
    }

    @Test
    void anEventRefusedForGoodIsSkippedAndTheNextOneStillArrives() throws Exception {
        int port = freePort();
        try (Receiver receiver = new Receiver(port);
             EventSender sender = new EventSender(URI.create("http://127.0.0.1:" + port + "/events"),
                     new EventSigner("s3cret"), 10, Duration.ofSeconds(2), Duration.ofMillis(200))) {
            assertTrue(sender.offer("{\"malformed\":true}"));
            assertTrue(sender.offer("{\"n\":1}"));
            waitFor(() -> sender.delivered() == 1, Duration.ofSeconds(10));
            assertEquals(1, sender.delivered());
            assertEquals(1, sender.rejected());
            assertEquals(List.of("{\"malformed\":true}", "{\"n\":1}"), receiver.bodies);
            assertTrue(EventSender.refusedForGood(400));
            assertTrue(!EventSender.refusedForGood(401) && !EventSender.refusedForGood(429)
                    && !EventSender.refusedForGood(503));
        }
    }

    @Test
    void offeringNeverBlocksAndAFullQueueDropsAndCounts() throws Exception {
        int deadPort = freePort(); // nothing listens: every send fails and is retried
        try (EventSender sender = new EventSender(URI.create("http://127.0.0.1:" + deadPort + "/events"),
                new EventSigner("s"), 10, Duration.ofMillis(200), Duration.ofMillis(200))) {
            long started = System.nanoTime();
            int accepted = 0;
            for (int i = 0; i < 1000; i++) {
                accepted += sender.offer("{\"n\":" + i + "}") ? 1 : 0;
            }
            long elapsedMs = (System.nanoTime() - started) / 1_000_000;
            assertTrue(elapsedMs < 1000, "offering 1000 events took " + elapsedMs + " ms");
            assertTrue(accepted <= 11, "accepted " + accepted); // 10 queued, at most 1 being sent
            assertEquals(1000 - accepted, sender.dropped());
        }
    }

    @Test
    void aReceiverThatComesBackGetsTheWaitingEventsOnce() throws Exception {
        int port = freePort();
        try (EventSender sender = new EventSender(URI.create("http://127.0.0.1:" + port + "/events"),
                new EventSigner("s"), 100, Duration.ofMillis(300), Duration.ofMillis(300))) {
            sender.offer("{\"n\":1}");
            sender.offer("{\"n\":2}");
            Thread.sleep(700); // a few failed attempts while the receiver is down
            try (Receiver receiver = new Receiver(port)) {
                waitFor(() -> receiver.bodies.size() >= 2, Duration.ofSeconds(10));
                Thread.sleep(300);
                assertEquals(List.of("{\"n\":1}", "{\"n\":2}"), receiver.bodies);
                assertEquals(2, sender.delivered());
            }
        }
    }
}
