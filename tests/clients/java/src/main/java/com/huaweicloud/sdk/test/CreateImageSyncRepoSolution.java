// The Java sample of SWR's "Creating an Automatic Image Synchronization Task" page
// (CreateImageSyncRepo), as the page shows it. Changed only where it must be:
//   - the project id and the request's values come from the environment instead of
//     "{project_id}", "{namespace}", "{repository}" and "string";
//   - SwrRegion.valueOf("cn-north-4") is kept: the SDK's own region override,
//     HUAWEICLOUD_SDK_REGION_SWR_CN_NORTH_4=<endpoint>, points it at Ferry.
package com.huaweicloud.sdk.test;

import com.huaweicloud.sdk.core.auth.ICredential;
import com.huaweicloud.sdk.core.auth.BasicCredentials;
import com.huaweicloud.sdk.core.exception.ConnectionException;
import com.huaweicloud.sdk.core.exception.RequestTimeoutException;
import com.huaweicloud.sdk.core.exception.ServiceResponseException;
import com.huaweicloud.sdk.swr.v2.region.SwrRegion;
import com.huaweicloud.sdk.swr.v2.*;
import com.huaweicloud.sdk.swr.v2.model.*;


public class CreateImageSyncRepoSolution {

    public static void main(String[] args) {
        // The AK and SK used for authentication are hard-coded or stored in plaintext, which has great security risks. It is recommended that the AK and SK be stored in ciphertext in configuration files or environment variables and decrypted during use to ensure security.
        // In this example, AK and SK are stored in environment variables for authentication. Before running this example, set environment variables CLOUD_SDK_AK and CLOUD_SDK_SK in the local environment
        String ak = System.getenv("CLOUD_SDK_AK");
        String sk = System.getenv("CLOUD_SDK_SK");
        String projectId = System.getenv("CLOUD_SDK_PROJECT_ID");

        ICredential auth = new BasicCredentials()
                .withProjectId(projectId)
                .withAk(ak)
                .withSk(sk);

        SwrClient client = SwrClient.newBuilder()
                .withCredential(auth)
                .withRegion(SwrRegion.valueOf("cn-north-4"))
                .build();
        CreateImageSyncRepoRequest request = new CreateImageSyncRepoRequest();
        request.withNamespace(System.getenv("SWR_NAMESPACE"));
        request.withRepository(System.getenv("SWR_REPOSITORY"));
        CreateImageSyncRepoRequestBody body = new CreateImageSyncRepoRequestBody();
        body.withOverride(true);
        body.withSyncAuto(true);
        body.withRemoteNamespace(System.getenv("SWR_REMOTE_NAMESPACE"));
        body.withRemoteRegionId(System.getenv("SWR_REMOTE_REGION_ID"));
        request.withBody(body);
        try {
            CreateImageSyncRepoResponse response = client.createImageSyncRepo(request);
            System.out.println(response.toString());
        } catch (ConnectionException e) {
            e.printStackTrace();
        } catch (RequestTimeoutException e) {
            e.printStackTrace();
        } catch (ServiceResponseException e) {
            e.printStackTrace();
            System.out.println(e.getHttpStatusCode());
            System.out.println(e.getRequestId());
            System.out.println(e.getErrorCode());
            System.out.println(e.getErrorMsg());
        }
    }
}
