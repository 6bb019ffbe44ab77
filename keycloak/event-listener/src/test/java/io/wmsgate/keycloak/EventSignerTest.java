package io.wmsgate.keycloak;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class EventSignerTest {

    @Test
    void matchesTheRfc4231TestVector() {
        // RFC 4231, test case 2 (HMAC-SHA-256)
        String sig = new EventSigner("Jefe").sign("what do ya want for nothing?".getBytes(StandardCharsets.UTF_8));
        assertEquals("sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", sig);
    }

    @Test
    void anyChangedByteChangesTheSignature() {
        EventSigner signer = new EventSigner("shared-secret");
        assertNotEquals(signer.sign("{\"type\":\"LOGIN\"}".getBytes(StandardCharsets.UTF_8)),
                signer.sign("{\"type\":\"LOGIN \"}".getBytes(StandardCharsets.UTF_8)));
        assertNotEquals(signer.sign(new byte[] {1}), new EventSigner("other-secret").sign(new byte[] {1}));
    }

    @Test
    void anEmptySecretIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> new EventSigner(""));
    }
}
