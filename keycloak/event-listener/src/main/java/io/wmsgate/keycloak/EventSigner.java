package io.wmsgate.keycloak;

import java.nio.charset.StandardCharsets;
import java.security.InvalidKeyException;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * Signs event bodies with HMAC-SHA256 (RFC 2104 with SHA-256) over the exact bytes sent, so the
 * alerting service can reject anything Keycloak did not send.
 *
 * <p>The signature travels in the {@code X-WMS-Signature} header as {@code sha256=<hex>}.
 */
public final class EventSigner {

    /** The request header that carries the signature. */
    public static final String HEADER = "X-WMS-Signature";

    private final SecretKeySpec key;

    /**
     * @param secret the shared secret (UTF-8); must not be empty
     * @throws IllegalArgumentException when the secret is empty
     */
    public EventSigner(String secret) {
        if (secret == null || secret.isEmpty()) {
            throw new IllegalArgumentException("the event signing secret must not be empty");
        }
        this.key = new SecretKeySpec(secret.getBytes(StandardCharsets.UTF_8), "HmacSHA256");
    }

    /**
     * @param body the exact bytes of the request body
     * @return {@code sha256=} followed by the lower-case hex HMAC-SHA256 of {@code body}
     */
    public String sign(byte[] body) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(key);
            return "sha256=" + HexFormat.of().formatHex(mac.doFinal(body));
        } catch (NoSuchAlgorithmException | InvalidKeyException e) {
            throw new IllegalStateException("HMAC-SHA256 is not available", e);
        }
    }
}
